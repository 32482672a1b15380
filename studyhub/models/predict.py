"""Batched predictions and penultimate-layer embeddings.

Whatever the user's ``preprocess`` or model raises (or a ``sys.exit`` in them),
an output of the wrong shape and non-finite scores become an
:class:`~studyhub.errors.InputError` naming the entry point, the case and the
fix; ``KeyboardInterrupt`` is never caught.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from studyhub.errors import InputError
from studyhub.models.entry import LoadedModel, describe_failure

__all__ = ["embed", "logits"]

#: ``fn(batch, names)`` of :func:`_run_batched`: one result row per input of the batch.
BatchFn = Callable[[torch.Tensor, list[str]], np.ndarray]


def _names(images: Sequence[np.ndarray], keys: Sequence[str] | None) -> list[str]:
    """How messages name each image: its case key, else its position."""
    if keys is None:
        return [f"image #{i + 1} of {len(images)}" for i in range(len(images))]
    keys = list(keys)
    if len(keys) != len(images):
        raise InputError(
            f"keys holds {len(keys)} case keys for {len(images)} images; pass one key per image"
        )
    return [f"case {k!r}" for k in keys]


def _tensors(
    model: LoadedModel, images: Sequence[np.ndarray], names: list[str]
) -> list[torch.Tensor]:
    out: list[torch.Tensor] = []
    for img, name in zip(images, names, strict=True):
        try:
            tensor = model.preprocess(img)
        except InputError as exc:
            raise InputError(
                f"model {model.entry_point!r}: preprocessing {name} failed: {exc}"
            ) from None
        except (Exception, SystemExit) as exc:  # the user's code; Ctrl-C is not caught
            raise InputError(
                f"model {model.entry_point!r}: preprocess raised {describe_failure(exc)} on "
                f"{name} (an image of shape {tuple(np.shape(img))}, values in [0, 1]); fix the "
                "entry point's preprocess so that it maps every image of the data to a tensor"
            ) from None
        if not isinstance(tensor, torch.Tensor):
            raise InputError(
                f"model {model.entry_point!r}: preprocess returned {type(tensor).__name__}; it "
                "must map each image to a torch.Tensor without the batch dimension"
            )
        out.append(tensor)
    return out


def _forward(
    model: LoadedModel,
    fn: Callable[[torch.Tensor], torch.Tensor],
    batch: torch.Tensor,
    names: list[str],
) -> torch.Tensor:
    """``fn(batch)``; what the user's model raises becomes an InputError naming the cases."""
    try:
        return fn(batch)
    except InputError:
        raise
    except (Exception, SystemExit) as exc:  # the user's code; Ctrl-C is not caught
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        raise InputError(
            f"model {model.entry_point!r} raised {describe_failure(exc)} on a batch of "
            f"{batch.shape[0]} inputs of shape {tuple(batch.shape[1:])} ({shown}); fix the model "
            "or make preprocess produce the input it expects"
        ) from None


def _require_finite(model: LoadedModel, rows: torch.Tensor, names: list[str], what: str) -> None:
    """Refuse NaN or infinite outputs, naming the first case that has them."""
    finite = torch.isfinite(rows.reshape(rows.shape[0], -1)).all(dim=1)
    if bool(finite.all()):
        return
    bad = [int(i) for i in torch.nonzero(~finite).flatten()]
    first = [round(float(v), 4) for v in rows[bad[0]].reshape(-1)[:8].tolist()]
    more = f" (and {len(bad) - 1} more in the same batch)" if len(bad) > 1 else ""
    raise InputError(
        f"model {model.entry_point!r} returned non-finite {what} {first} for {names[bad[0]]}"
        f"{more}; a model must give finite numbers for every case: check its weights for NaN "
        "or inf, and what preprocess feeds it for this image"
    )


def _run_batched(
    model: LoadedModel,
    images: Sequence[np.ndarray],
    batch_size: int,
    device: str,
    fn: BatchFn,
    keys: Sequence[str] | None,
) -> list[np.ndarray]:
    """Apply ``fn`` to batches of equal-shaped inputs; results in the order of ``images``.

    Images of different sizes (common in real data sets) are grouped by the shape
    of their preprocessed tensor, so a model that accepts any size still batches.
    """
    names = _names(images, keys)
    tensors = _tensors(model, images, names)
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, t in enumerate(tensors):
        groups.setdefault(tuple(t.shape), []).append(i)
    results: list[np.ndarray | None] = [None] * len(tensors)
    for indices in groups.values():
        for start in range(0, len(indices), batch_size):
            chunk = indices[start : start + batch_size]
            batch = torch.stack([tensors[i] for i in chunk]).to(device)
            for i, row in zip(chunk, fn(batch, [names[i] for i in chunk]), strict=True):
                results[i] = row
    return [r for r in results if r is not None]


def logits(
    model: LoadedModel,
    images: Sequence[np.ndarray],
    *,
    n_classes: int,
    batch_size: int = 64,
    device: str = "cpu",
    keys: Sequence[str] | None = None,
) -> np.ndarray:
    """Raw class scores ``(n_images, n_classes)``.

    Parameters
    ----------
    model : LoadedModel
        From :func:`~studyhub.models.entry.load_model`.
    images : sequence of numpy.ndarray
        Images as loaded (``[0, 1]``).
    n_classes : int
        The number of labels: the model must return one score per label.
    batch_size : int, default 64
        Inputs per forward pass.
    device : str, default "cpu"
        Where the model runs.
    keys : sequence of str, optional
        The images' case keys, to name a failing case in messages.

    Raises
    ------
    InputError
        If preprocess or the model raises (or calls ``sys.exit``), the output's
        shape is not ``(batch, n_classes)``, or any score is NaN or infinite; the
        message names the entry point and the case.
    """
    module = model.module.to(device)

    def run(batch: torch.Tensor, names: list[str]) -> np.ndarray:
        out = _forward(model, module, batch, names)
        if not isinstance(out, torch.Tensor) or out.shape != (batch.shape[0], n_classes):
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise InputError(
                f"model {model.entry_point!r} returned output of shape {shape} for a batch of "
                f"{batch.shape[0]}; expected ({batch.shape[0]}, {n_classes}), one score per "
                "label in data.labels"
            )
        _require_finite(model, out, names, "logits")
        return np.asarray(out.float().cpu().numpy())

    with torch.inference_mode():
        rows = _run_batched(model, images, batch_size, device, run, keys)
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
    model: LoadedModel,
    images: Sequence[np.ndarray],
    *,
    batch_size: int = 64,
    device: str = "cpu",
    keys: Sequence[str] | None = None,
) -> np.ndarray:
    """Penultimate-layer features ``(n_images, d)`` used for diversity sampling.

    Raises
    ------
    InputError
        As :func:`logits` does, and when the model has no penultimate layer to read.
    """
    module = model.module.to(device)
    features = _penultimate(module)

    def run(batch: torch.Tensor, names: list[str]) -> np.ndarray:
        out = _forward(model, features, batch, names).flatten(1)
        _require_finite(model, out, names, "embeddings")
        return np.asarray(out.float().cpu().numpy())

    with torch.inference_mode():
        rows = _run_batched(model, images, batch_size, device, run, keys)
    return np.stack(rows) if rows else np.zeros((0, 0), dtype=np.float32)
