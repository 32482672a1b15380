"""Batched predictions and penultimate-layer embeddings."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from studyhub.errors import InputError
from studyhub.models.entry import LoadedModel

__all__ = ["embed", "logits"]


def _batches(
    model: LoadedModel, images: Sequence[np.ndarray], batch_size: int, device: str
) -> list[torch.Tensor]:
    out: list[torch.Tensor] = []
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        try:
            tensors = [model.preprocess(img) for img in chunk]
            batch = torch.stack(tensors).to(device)
        except InputError as exc:
            raise InputError(f"model {model.entry_point!r}: preprocessing failed: {exc}") from None
        except (RuntimeError, TypeError, ValueError) as exc:
            raise InputError(
                f"model {model.entry_point!r}: preprocess did not return tensors of one shape "
                f"({exc}); it must map each image to a tensor without the batch dimension"
            ) from None
        out.append(batch)
    return out


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
    rows: list[np.ndarray] = []
    with torch.inference_mode():
        for batch in _batches(model, images, batch_size, device):
            out = module(batch)
            if not isinstance(out, torch.Tensor) or out.shape != (batch.shape[0], n_classes):
                shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                raise InputError(
                    f"model {model.entry_point!r} returned output of shape {shape} for a batch of "
                    f"{batch.shape[0]}; expected ({batch.shape[0]}, {n_classes}), one score per "
                    "label in data.labels"
                )
            rows.append(out.float().cpu().numpy())
    return np.concatenate(rows) if rows else np.zeros((0, n_classes), dtype=np.float32)


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
    rows: list[np.ndarray] = []
    with torch.inference_mode():
        for batch in _batches(model, images, batch_size, device):
            rows.append(features(batch).flatten(1).float().cpu().numpy())
    return np.concatenate(rows) if rows else np.zeros((0, 0), dtype=np.float32)
