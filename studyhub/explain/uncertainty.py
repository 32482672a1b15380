"""Attribution uncertainty: how much a map changes when the input barely does.

:func:`attribution_uncertainty` recomputes an arm's map on ``n_samples`` copies
of each input with small Gaussian noise added (input noise, not baseline
resampling), normalises every map the way the renderer does (absolute value
summed over channels, divided by its own 99th percentile, clipped to [0, 1]) and
returns the per-pixel standard deviation across the copies. It is 0 where every
copy agrees and at most 0.5; the renderer outlines where it is high, telling
raters "this part of the map is not stable".

References
----------
Smilkov, Thorat, Kim, Viégas & Wattenberg (2017). SmoothGrad: removing noise by
adding noise. (The same input-noise model, used here to measure spread rather
than to average it away.)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from studyhub.errors import InputError
from studyhub.explain.arms import Arm, build_arm, item_seeds

__all__ = ["attribution_uncertainty", "normalise_maps"]


def normalise_maps(maps: Tensor, *, percentile: float = 99.0) -> Tensor:
    """``|maps|`` summed over channels, divided by each map's percentile, clipped to [0, 1].

    Parameters
    ----------
    maps : torch.Tensor
        Attributions ``(N, C, H, W)``.
    percentile : float, default 99.0
        Percentile of each map's magnitudes that maps to 1.

    Returns
    -------
    torch.Tensor
        ``(N, H, W)`` in [0, 1]; an all-zero map stays zero.
    """
    magnitude = maps.detach().abs().sum(dim=1).to(torch.float64)
    scale = torch.quantile(magnitude.flatten(1), percentile / 100.0, dim=1).view(-1, 1, 1)
    scale = torch.where(scale > 0, scale, magnitude.flatten(1).amax(dim=1).view(-1, 1, 1))
    return (magnitude / scale.clamp_min(1e-12)).clamp(0.0, 1.0)


def attribution_uncertainty(
    arm: Arm | nn.Module,
    inputs: Tensor,
    target: Tensor | Sequence[int] | int,
    *,
    n_samples: int = 8,
    seed: int | Sequence[int] = 0,
    noise_level: float = 0.05,
) -> Tensor:
    """Per-pixel spread of an arm's normalised map across noisy copies of each input.

    Parameters
    ----------
    arm : Arm or torch.nn.Module
        The arm whose maps are shown (a bare model means Integrated Gradients
        with 16 steps from the input-space zero).
    inputs : torch.Tensor
        Preprocessed batch ``(N, C, H, W)``; not modified.
    target : torch.Tensor, sequence of int or int
        Class index per input.
    n_samples : int, default 8
        Noisy copies per input (the protocol's ``cues.uncertainty_samples``), >= 2.
    seed : int or sequence of int, default 0
        Seeds the noise per item, as arms do (an item's result depends only on
        its own seed and pixels, so batching does not change it).
    noise_level : float, default 0.05
        Noise standard deviation as a share of each input's ``max − min``.

    Returns
    -------
    torch.Tensor
        ``float32`` ``(N, H, W)``: standard deviation (population, ``ddof=0``)
        over the copies of :func:`normalise_maps`, in [0, 0.5].

    Raises
    ------
    InputError
        If ``n_samples`` < 2, ``noise_level`` < 0, the inputs are not
        ``(N, C, H, W)`` or the arm makes no map (the ``none`` control).
    """
    if isinstance(arm, nn.Module):
        arm = build_arm("integrated_gradients", arm, {"n_steps": 16})
    if not isinstance(arm, Arm):
        raise InputError(
            f"arm is a {type(arm).__name__}; pass an arm from build_arm or a torch.nn.Module"
        )
    if not arm.produces_map:
        raise InputError(
            f"arm {arm.method!r} makes no map, so it has no uncertainty; skip the uncertainty "
            "cue for it"
        )
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 2:
        raise InputError(f"n_samples is {n_samples!r}; use an integer >= 2")
    if not isinstance(noise_level, int | float) or not noise_level >= 0:
        raise InputError(f"noise_level is {noise_level!r}; use a number >= 0 (e.g. 0.05)")
    if not isinstance(inputs, Tensor) or inputs.ndim != 4 or not inputs.is_floating_point():
        raise InputError("inputs must be a floating tensor (N, C, H, W) of preprocessed images")
    x = inputs.detach().to("cpu")
    n = x.shape[0]
    t = torch.as_tensor(target).to("cpu")
    t = t.expand(n) if t.ndim == 0 else t
    generators = [torch.Generator().manual_seed(s) for s in item_seeds(seed, x)]
    flat = x.flatten(1)
    spread = (flat.amax(dim=1) - flat.amin(dim=1)) * float(noise_level)
    noisy = torch.stack(
        [
            x[i] + spread[i] * torch.randn((n_samples, *x.shape[1:]), generator=g)
            for i, g in enumerate(generators)
        ]
    )
    batch = noisy.flatten(0, 1).to(device=inputs.device, dtype=inputs.dtype)
    arm_seed = seed if isinstance(seed, int) else [s for s in seed for _ in range(n_samples)]
    maps = arm.attribute(batch, t.repeat_interleave(n_samples), seed=arm_seed)
    normalised = normalise_maps(maps).view(n, n_samples, *x.shape[2:])
    return normalised.std(dim=1, unbiased=False).to(torch.float32)
