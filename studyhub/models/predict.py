"""Batched predictions and penultimate-layer embeddings."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from studyhub.errors import InputError
from studyhub.models.entry import LoadedModel

__all__ = ["embed", "logits"]


def _tensors(model: LoadedModel, images: Sequence[np.ndarray]) -> list[torch.Tensor]:
    out: list[torch.Tensor] = []
    for img in images:
        try:
            tensor = model.preprocess(img)
        except InputError as exc:
            raise InputError(f"model {model.entry_point!r}: preprocessing failed: {exc}") from None
        if not isinstance(tensor, torch.Tensor):
            raise InputError(
                f"model {model.entry_point!r}: preprocess returned {type(tensor).__name__}; it "
                "must map each image to a torch.Tensor without the batch dimension"
            )
        out.append(tensor)
    return out


def _run_batched(
    model: LoadedModel,
    images: Sequence[np.ndarray],
    batch_size: int,
    device: str,
    fn: Callable[[torch.Tensor], np.ndarray],
) -> list[np.ndarray]:
    """Apply ``fn`` to batches of equal-shaped inputs; results in the order of ``images``.

    Images of different sizes (common in real data sets) are grouped by the shape
    of their preprocessed tensor, so a model that accepts any size still batches.
    """
    tensors = _tensors(model, images)
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, t in enumerate(tensors):
        groups.setdefault(tuple(t.shape), []).append(i)
    results: list[np.ndarray | None] = [None] * len(tensors)
    for indices in groups.values():
        for start in range(0, len(indices), batch_size):
            chunk = indices[start : start + batch_size]
            batch = torch.stack([tensors[i] for i in chunk]).to(device)
            for i, row in zip(chunk, fn(batch), strict=True):
                results[i] = row
    return [r for r in results if r is not None]


def logits(
    model: LoadedModel,
    images: Sequence[np.ndarray],
    *,
    n_classes: int,
    batch_size: int = 64,
    device: str = "cpu",
) -> np.ndarray:
    """Raw class scores ``(n_images, n_classes)``; refuses an output of the wrong shape."""
    module = model.module.to(device)

    def run(batch: torch.Tensor) -> np.ndarray:
        out = module(batch)
        if not isinstance(out, torch.Tensor) or out.shape != (batch.shape[0], n_classes):
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise InputError(
                f"model {model.entry_point!r} returned output of shape {shape} for a batch of "
                f"{batch.shape[0]}; expected ({batch.shape[0]}, {n_classes}), one score per "
                "label in data.labels"
            )
        return np.asarray(out.float().cpu().numpy())

    with torch.inference_mode():
        rows = _run_batched(model, images, batch_size, device, run)
    return np.stack(rows) if rows else np.zeros((0, n_classes), dtype=np.float32)


def _penultimate(module: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """The model's own ``embed`` method, else the input of its last linear layer."""
    own = getattr(module, "embed", None)
    if callable(own):
        return own
    linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise InputError(
            f"model {type(module).__name__} has neither an embed() method nor a final "
            "nn.Linear layer, so diversity sampling has no embedding; add embed(x) to the model "
            "or use sampling.diversity: none"
        )
    last = linears[-1]

    def run(x: torch.Tensor) -> torch.Tensor:
        captured: list[torch.Tensor] = []
        handle = last.register_forward_hook(lambda _m, inp, _o: captured.append(inp[0]))
        try:
            module(x)
        finally:
            handle.remove()
        return captured[-1]

    return run


def embed(
    model: LoadedModel, images: Sequence[np.ndarray], *, batch_size: int = 64, device: str = "cpu"
) -> np.ndarray:
    """Penultimate-layer features ``(n_images, d)`` used for diversity sampling."""
    module = model.module.to(device)
    features = _penultimate(module)

    def run(batch: torch.Tensor) -> np.ndarray:
        return np.asarray(features(batch).flatten(1).float().cpu().numpy())

    with torch.inference_mode():
        rows = _run_batched(model, images, batch_size, device, run)
    return np.stack(rows) if rows else np.zeros((0, 0), dtype=np.float32)
