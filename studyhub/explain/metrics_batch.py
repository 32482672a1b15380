"""The faithfulness metrics of :mod:`studyhub.explain.metrics` for a whole batch of cases.

The one-case functions send one case's perturbations through the model; these
send a batch's: the deletion/insertion curves take one model pass of the batch
per step, and the perturbations of infidelity and max-sensitivity are stacked
into one forward (or explanation) batch. Each case draws its perturbations from
its own generator, seeded as the one-case function seeds it, so the values equal
the one-case values up to floating-point rounding of the larger batches
(``tests/explain/test_metrics_batch.py`` checks this on the demo model).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor, nn

from studyhub.errors import InputError
from studyhub.explain.metrics import PerturbationCurve

__all__ = ["SeededExplainFn", "infidelity_batch", "perturbation_curves", "sensitivity_max_batch"]

#: ``(inputs (M, C, H, W), targets (M,), seeds (M,)) -> attribution`` shaped like inputs,
#: e.g. ``lambda x, t, seeds: arm.attribute(x, t, seed=seeds)``.
SeededExplainFn = Callable[[Tensor, Tensor, Sequence[int]], Tensor]


def _check_batch(inputs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
    if not isinstance(inputs, Tensor) or inputs.ndim != 4:
        raise InputError(
            f"inputs has shape {tuple(getattr(inputs, 'shape', ()))}; pass a preprocessed "
            "batch (N, C, H, W)"
        )
    t = torch.as_tensor(targets, device=inputs.device).reshape(-1)
    if t.shape[0] != inputs.shape[0]:
        raise InputError(
            f"{t.shape[0]} targets for {inputs.shape[0]} inputs; pass one target per input"
        )
    return inputs.detach(), t


def perturbation_curves(
    model: nn.Module | Callable[[Tensor], Tensor],
    inputs: Tensor,
    attributions: NDArray[np.floating] | Sequence[NDArray[np.floating]],
    targets: Tensor,
    *,
    mode: Literal["deletion", "insertion"] = "deletion",
    steps: int = 32,
    baseline: float | Tensor = 0.0,
    softmax: bool = True,
) -> list[PerturbationCurve]:
    """Deletion or insertion curves of a batch, one model pass of the batch per step.

    The same curve as :func:`~studyhub.explain.metrics.perturbation_curve` for
    each case (pixels ranked by attribution, largest first, ties in row-major
    order; ``round(i * N / steps)`` pixels replaced at step ``i``).

    Parameters
    ----------
    model : torch.nn.Module or callable
        Maps ``(N, C, H, W)`` to logits ``(N, classes)``; its mode is left as it is.
    inputs : torch.Tensor
        The preprocessed batch ``(N, C, H, W)``.
    attributions : array-like
        ``(N, H, W)`` maps.
    targets : torch.Tensor
        ``(N,)`` class indices whose scores are followed.
    mode : {"deletion", "insertion"}
    steps : int, default 32
    baseline : float or torch.Tensor, default 0.0
        Replacement value, or a tensor shaped like ``inputs`` (or like one input).
    softmax : bool, default True

    Returns
    -------
    list of PerturbationCurve
        One per case, in the order of ``inputs``.
    """
    x, t = _check_batch(inputs, targets)
    n, _channels, h, w = x.shape
    maps = np.asarray(attributions, dtype=np.float64)
    if maps.shape != (n, h, w):
        raise InputError(
            f"attributions have shape {maps.shape} for inputs of shape {tuple(x.shape)}; "
            f"pass one (H, W) map per input, i.e. {(n, h, w)}"
        )
    if mode not in ("deletion", "insertion"):
        raise InputError(f"mode is {mode!r}; use 'deletion' or 'insertion'")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise InputError(f"steps is {steps!r}; pass an integer >= 1, e.g. 32")
    if isinstance(baseline, Tensor):
        base = baseline.detach().to(x.device, x.dtype).expand_as(x)
    else:
        base = torch.full_like(x, float(baseline))
    # rank[k, p]: where pixel p of case k comes in its attribution order.
    order = np.argsort(-maps.reshape(n, h * w), axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(h * w)[None, :].repeat(n, axis=0), axis=1)
    ranks = torch.from_numpy(rank).to(x.device).reshape(n, 1, h, w)
    start, end = (x, base) if mode == "deletion" else (base, x)
    counts = [round(i * h * w / steps) for i in range(steps + 1)]
    scores = np.empty((n, steps + 1), dtype=np.float64)
    rows = torch.arange(n, device=x.device)
    with torch.no_grad():
        for i, count in enumerate(counts):
            batch = torch.where(ranks < count, end, start)
            out = model(batch)
            if softmax:
                out = torch.softmax(out, dim=1)
            scores[:, i] = out[rows, t].double().cpu().numpy()
    fractions = np.asarray(counts, dtype=np.float64) / (h * w)
    aucs = (scores.sum(axis=1) - scores[:, 0] / 2 - scores[:, -1] / 2) / steps
    return [PerturbationCurve(fractions, scores[k], float(aucs[k])) for k in range(n)]


def _stacked_noise(
    shape: tuple[int, ...],
    samples: int,
    seeds: Sequence[int],
    scale: float,
    *,
    uniform: bool,
    dtype: torch.dtype,
) -> Tensor:
    """``(N * samples, *shape)`` noise, case k's block drawn from a generator seeded ``seeds[k]``.

    Each block is what :func:`studyhub.explain.metrics._noise` draws for one case's
    ``samples`` perturbations, so the batch equals the one-case draws.
    """
    blocks = []
    for seed in seeds:
        gen = torch.Generator().manual_seed(int(seed))
        if uniform:
            blocks.append(
                torch.rand((samples, *shape), generator=gen, dtype=dtype) * 2 * scale - scale
            )
        else:
            blocks.append(torch.randn((samples, *shape), generator=gen, dtype=dtype) * scale)
    return torch.cat(blocks)


def _check_samples(n_perturb_samples: int, seeds: Sequence[int], n: int) -> None:
    if isinstance(n_perturb_samples, bool) or n_perturb_samples < 1:
        raise InputError(f"n_perturb_samples is {n_perturb_samples!r}; pass an integer >= 1")
    if len(seeds) != n:
        raise InputError(f"{len(seeds)} seeds for {n} inputs; pass one seed per input")


def infidelity_batch(
    model: nn.Module | Callable[[Tensor], Tensor],
    explain_fn: SeededExplainFn,
    inputs: Tensor,
    targets: Tensor,
    *,
    n_perturb_samples: int = 16,
    noise_std: float = 0.1,
    seeds: Sequence[int],
) -> NDArray[np.float64]:
    """Infidelity of every case of a batch, all perturbations in one forward batch.

    ``E_I[(I · a - (f(x) - f(x - I)))²]`` as in
    :func:`~studyhub.explain.metrics.infidelity` (Captum's formula, not
    normalised), with case k's Gaussian perturbations drawn from a generator
    seeded ``seeds[k]`` and ``a = explain_fn(inputs, targets, seeds)`` explained
    once for the batch.

    Returns
    -------
    numpy.ndarray
        ``(N,)`` infidelities.
    """
    x, t = _check_batch(inputs, targets)
    n, s = x.shape[0], n_perturb_samples
    _check_samples(s, seeds, n)
    attributions = explain_fn(x, t, list(seeds)).detach()
    noise = _stacked_noise(
        tuple(x.shape[1:]), s, seeds, noise_std, uniform=False, dtype=x.dtype
    ).to(x.device)
    expanded = x.repeat_interleave(s, dim=0)
    rows = t.repeat_interleave(s)
    with torch.no_grad():
        fwd = model(x)[torch.arange(n, device=x.device), t].repeat_interleave(s)
        perturbed = model(expanded - noise)[torch.arange(n * s, device=x.device), rows]
    dot = (attributions.repeat_interleave(s, dim=0) * noise).reshape(n * s, -1).sum(dim=1)
    squared = (dot - (fwd - perturbed)).pow(2).reshape(n, s)
    return np.asarray(squared.sum(dim=1).div(s).double().cpu().numpy())


def sensitivity_max_batch(
    explain_fn: SeededExplainFn,
    inputs: Tensor,
    targets: Tensor,
    *,
    n_perturb_samples: int = 16,
    radius: float = 0.02,
    seeds: Sequence[int],
) -> NDArray[np.float64]:
    """Max-sensitivity of every case of a batch, all perturbed inputs explained as one batch.

    ``max_j ||a(x + δ_j) - a(x)|| / ||a(x)||`` as in
    :func:`~studyhub.explain.metrics.sensitivity_max` (Frobenius norms, a zero
    norm read as 1), with case k's uniform perturbations drawn from a generator
    seeded ``seeds[k]``. ``explain_fn`` explains the batch, then the stacked
    ``(N * samples, C, H, W)`` perturbed batch with each case's target and seed
    repeated ``samples`` times.

    Returns
    -------
    numpy.ndarray
        ``(N,)`` max-sensitivities.
    """
    x, t = _check_batch(inputs, targets)
    n, s = x.shape[0], n_perturb_samples
    _check_samples(s, seeds, n)
    base = explain_fn(x, t, list(seeds)).detach().reshape(n, -1)
    noise = _stacked_noise(tuple(x.shape[1:]), s, seeds, radius, uniform=True, dtype=x.dtype)
    perturbed = x.repeat_interleave(s, dim=0) + noise.to(x.device)
    repeated = [int(seed) for seed in seeds for _ in range(s)]
    explained = explain_fn(perturbed, t.repeat_interleave(s), repeated).detach()
    explained = explained.reshape(n * s, -1)
    norms = torch.linalg.vector_norm(base, dim=1)
    norms = torch.where(norms == 0.0, torch.ones_like(norms), norms).repeat_interleave(s)
    diff = torch.linalg.vector_norm(base.repeat_interleave(s, dim=0) - explained, dim=1)
    return np.asarray((diff / norms).reshape(n, s).max(dim=1).values.double().cpu().numpy())
