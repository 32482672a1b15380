"""Quantitative metrics of one explanation, stored per stimulus for the analysis.

Faithfulness to the model: :func:`deletion_auc` and :func:`insertion_auc`
(Petsiuk et al. 2018), :func:`infidelity` and :func:`sensitivity_max` (Captum's
implementations of Yeh et al. 2019). Agreement with expert masks:
:func:`pointing_game`, :func:`relevance_mass` and :func:`top_k_iou`. Model
dependence: :func:`randomization_rank_correlation` (Adebayo et al. 2018).

Quantus is not a dependency; these are written by hand and checked in
``tests/explain/test_metrics.py`` against values computed on paper for 4×4 maps
and a linear model.

References
----------
.. [1] Petsiuk, V., Das, A., Saenko, K. (2018). RISE: Randomized input sampling
   for explanation of black-box models. BMVC.
.. [2] Yeh, C.-K., Hsieh, C.-Y., Suggala, A., Inouye, D. I., Ravikumar, P. (2019).
   On the (in)fidelity and sensitivity of explanations. NeurIPS.
.. [3] Zhang, J., Bargal, S. A., Lin, Z., Brandt, J., Shen, X., Sclaroff, S. (2018).
   Top-down neural attention by excitation backprop. IJCV 126, 1084-1102.
.. [4] Arras, L., Osman, A., Samek, W. (2022). CLEVR-XAI: A benchmark dataset for
   the ground truth evaluation of neural network explanations. Information Fusion 81.
.. [5] Adebayo, J., Gilmer, J., Muelly, M., Goodfellow, I., Hardt, M., Kim, B.
   (2018). Sanity checks for saliency maps. NeurIPS.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from numpy.typing import NDArray
from scipy import ndimage, stats
from torch import Tensor, nn

from studyhub.errors import InputError
from studyhub.explain.maps import check_map, top_k_mask

__all__ = [
    "PerturbationCurve",
    "deletion_auc",
    "infidelity",
    "insertion_auc",
    "perturbation_curve",
    "pointing_game",
    "randomization_rank_correlation",
    "relevance_mass",
    "sensitivity_max",
    "top_k_iou",
]

ExplainFn = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class PerturbationCurve:
    """A deletion or insertion curve.

    Attributes
    ----------
    fractions : numpy.ndarray
        Share of pixels removed (deletion) or inserted (insertion), ``i / steps``.
    scores : numpy.ndarray
        The model's score of the target class at each fraction.
    auc : float
        Trapezoidal area under ``scores`` over ``fractions`` (in [0, 1] for probabilities).
    """

    fractions: NDArray[np.float64]
    scores: NDArray[np.float64]
    auc: float


def _as_input(inputs: Tensor) -> Tensor:
    if not isinstance(inputs, Tensor):
        raise InputError(
            f"inputs is a {type(inputs).__name__}; pass the preprocessed torch.Tensor "
            "(C, H, W) or (1, C, H, W)"
        )
    x = inputs.detach()
    if x.ndim == 3:
        x = x.unsqueeze(0)
    if x.ndim != 4 or x.shape[0] != 1:
        raise InputError(
            f"inputs has shape {tuple(inputs.shape)}; pass one preprocessed image "
            "(C, H, W) or (1, C, H, W)"
        )
    return x


def perturbation_curve(
    model: nn.Module | Callable[[Tensor], Tensor],
    inputs: Tensor,
    attribution: object,
    target: int,
    *,
    mode: Literal["deletion", "insertion"] = "deletion",
    steps: int = 32,
    baseline: float | Tensor = 0.0,
    softmax: bool = True,
    batch_size: int = 64,
) -> PerturbationCurve:
    """Remove or insert pixels in attribution order and follow the model's score.

    Pixels are ranked by attribution, largest first (ties in row-major order).
    At step ``i = 0..steps`` the first ``round(i * N / steps)`` pixels of the
    ``N = H * W`` are replaced by the baseline (deletion: starting from the
    image) or copied from the image onto the baseline (insertion: starting from
    the baseline), in every channel. The perturbed inputs go through the model
    in batches of ``batch_size`` under ``torch.no_grad()``; the model's mode is
    left as it is (call ``model.eval()`` first).

    Parameters
    ----------
    model : torch.nn.Module or callable
        Maps a batch ``(N, C, H, W)`` to logits ``(N, classes)``.
    inputs : torch.Tensor
        One preprocessed image ``(C, H, W)`` or ``(1, C, H, W)``.
    attribution : array-like
        ``(H, W)`` map (signed; the order uses the raw values).
    target : int
        Class index whose score is followed.
    mode : {"deletion", "insertion"}
    steps : int, default 32
        Number of steps; the curve has ``steps + 1`` points.
    baseline : float or torch.Tensor, default 0.0
        Replacement value in the model's input space (0.0 is the mean of a
        standardised input), or a tensor shaped like ``inputs`` (e.g. a blurred
        copy, as Petsiuk et al. use for insertion).
    softmax : bool, default True
        Score is the softmax probability of ``target``; ``False`` uses the raw output.
    batch_size : int, default 64

    Returns
    -------
    PerturbationCurve

    References
    ----------
    Petsiuk et al. (2018), see the module references [1]_; the area is the
    trapezoid rule of their ``auc`` (``(sum - first/2 - last/2) / steps``).
    """
    x = _as_input(inputs)
    _, channels, h, w = x.shape
    attr = check_map(attribution, "attribution", shape=(h, w))
    if mode not in ("deletion", "insertion"):
        raise InputError(f"mode is {mode!r}; use 'deletion' or 'insertion'")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise InputError(f"steps is {steps!r}; pass an integer >= 1, e.g. 32")
    if batch_size < 1:
        raise InputError(f"batch_size is {batch_size!r}; pass an integer >= 1")
    if isinstance(baseline, Tensor):
        base = baseline.detach().to(x.device, x.dtype).reshape(x.shape)
    else:
        base = torch.full_like(x, float(baseline))
    order = torch.from_numpy(np.argsort(-attr.ravel(), kind="stable").copy()).to(x.device)
    counts = [round(i * h * w / steps) for i in range(steps + 1)]
    start, end = (x, base) if mode == "deletion" else (base, x)
    start_flat, end_flat = start.reshape(channels, h * w), end.reshape(channels, h * w)
    scores: list[float] = []
    with torch.no_grad():
        for first in range(0, len(counts), batch_size):
            batch = []
            for n in counts[first : first + batch_size]:
                img = start_flat.clone()
                idx = order[:n]
                img[:, idx] = end_flat[:, idx]
                batch.append(img.reshape(channels, h, w))
            out = model(torch.stack(batch))
            if softmax:
                out = torch.softmax(out, dim=1)
            scores.extend(float(v) for v in out[:, target].double().cpu())
    values = np.asarray(scores, dtype=np.float64)
    auc = float((values.sum() - values[0] / 2 - values[-1] / 2) / steps)
    return PerturbationCurve(np.asarray(counts, dtype=np.float64) / (h * w), values, auc)


def deletion_auc(
    model: nn.Module | Callable[[Tensor], Tensor],
    inputs: Tensor,
    attribution: object,
    target: int,
    **kwargs: object,
) -> float:
    """Area under the deletion curve: lower means a more faithful map [1]_.

    See :func:`perturbation_curve` for the parameters (``steps``, ``baseline``,
    ``softmax``, ``batch_size``).
    """
    return perturbation_curve(
        model,
        inputs,
        attribution,
        target,
        mode="deletion",
        **kwargs,  # type: ignore[arg-type]
    ).auc


def insertion_auc(
    model: nn.Module | Callable[[Tensor], Tensor],
    inputs: Tensor,
    attribution: object,
    target: int,
    **kwargs: object,
) -> float:
    """Area under the insertion curve: higher means a more faithful map [1]_.

    See :func:`perturbation_curve` for the parameters.
    """
    return perturbation_curve(
        model,
        inputs,
        attribution,
        target,
        mode="insertion",
        **kwargs,  # type: ignore[arg-type]
    ).auc


def _explainer(explain_fn: ExplainFn) -> Callable[..., tuple[Tensor]]:
    # Captum calls the explanation with a tuple of inputs and needs a tuple back: a
    # bare tensor is iterated along its batch axis and the norms come out wrong.
    def run(inputs: Tensor | tuple[Tensor, ...], target: Tensor | int) -> tuple[Tensor]:
        x = inputs[0] if isinstance(inputs, tuple) else inputs
        t = torch.as_tensor(target, device=x.device).reshape(-1).expand(x.shape[0])
        return (explain_fn(x, t).detach(),)

    return run


def _noise(std: float, seed: int, *, uniform: bool) -> Callable[[Tensor], Tensor]:
    gen = torch.Generator().manual_seed(seed)

    def draw(x: Tensor) -> Tensor:
        if uniform:
            noise = torch.rand(x.shape, generator=gen, dtype=x.dtype) * 2 * std - std
        else:
            noise = torch.randn(x.shape, generator=gen, dtype=x.dtype) * std
        return noise.to(x.device)

    return draw


def infidelity(
    model: nn.Module | Callable[[Tensor], Tensor],
    explain_fn: ExplainFn,
    inputs: Tensor,
    target: int,
    *,
    n_perturb_samples: int = 16,
    noise_std: float = 0.1,
    seed: int = 0,
    perturb_fn: Callable[[Tensor], Tensor] | None = None,
) -> float:
    """Explanation infidelity [2]_, computed by :func:`captum.metrics.infidelity`.

    ``E_I[(I · a - (f(x) - f(x - I)))²]`` with ``a = explain_fn(x, target)`` and
    perturbations ``I`` drawn ``n_perturb_samples`` times (Gaussian noise with
    ``noise_std`` from a generator seeded with ``seed``, or ``perturb_fn(x)``).
    ``f`` is the model's raw output for ``target``. Lower is better.

    Parameters
    ----------
    model : torch.nn.Module or callable
    explain_fn : callable
        ``(inputs (N, C, H, W), target (N,)) -> attribution`` shaped like inputs.
    inputs : torch.Tensor
        One preprocessed image ``(C, H, W)`` or ``(1, C, H, W)``.
    target : int
    n_perturb_samples : int, default 16
    noise_std : float, default 0.1
    seed : int, default 0
    perturb_fn : callable, optional
        ``x -> I``, the perturbation for a batch (replaces the Gaussian noise).

    Returns
    -------
    float
    """
    from captum.metrics import infidelity as captum_infidelity

    x = _as_input(inputs)
    draw = perturb_fn or _noise(noise_std, seed, uniform=False)

    def perturb(batch: Tensor) -> tuple[Tensor, Tensor]:
        noise = draw(batch)
        return noise, batch - noise

    attribution = explain_fn(x, torch.tensor([target], device=x.device)).detach()
    result = captum_infidelity(
        model, perturb, x, attribution, target=target, n_perturb_samples=n_perturb_samples
    )
    return float(result.reshape(-1)[0])


def sensitivity_max(
    explain_fn: ExplainFn,
    inputs: Tensor,
    target: int,
    *,
    n_perturb_samples: int = 16,
    radius: float = 0.02,
    seed: int = 0,
    perturb_fn: Callable[[Tensor], Tensor] | None = None,
) -> float:
    """Max-sensitivity [2]_, computed by :func:`captum.metrics.sensitivity_max`.

    ``max_j ||a(x + δ_j) - a(x)|| / ||a(x)||`` (Frobenius norms) over
    ``n_perturb_samples`` perturbations ``δ_j`` drawn uniformly from
    ``[-radius, radius]`` per element with a generator seeded with ``seed``
    (Captum's default draws from the global generator), or ``δ = perturb_fn(x)``.
    Lower is better.

    Parameters
    ----------
    explain_fn : callable
        ``(inputs (N, C, H, W), target (N,)) -> attribution``.
    inputs : torch.Tensor
        One preprocessed image ``(C, H, W)`` or ``(1, C, H, W)``.
    target : int
    n_perturb_samples : int, default 16
    radius : float, default 0.02
    seed : int, default 0
    perturb_fn : callable, optional

    Returns
    -------
    float
    """
    from captum.metrics import sensitivity_max as captum_sensitivity

    x = _as_input(inputs)
    draw = perturb_fn or _noise(radius, seed, uniform=True)

    def perturb(batch: Tensor) -> Tensor:
        return batch + draw(batch)

    result = captum_sensitivity(
        _explainer(explain_fn),
        x,
        perturb_func=perturb,
        n_perturb_samples=n_perturb_samples,
        target=torch.tensor([target], device=x.device),
    )
    return float(result.reshape(-1)[0])


def _region(
    mask: object, shape: tuple[int, ...], labels: Collection[int] | None
) -> NDArray[np.bool_]:
    values = np.asarray(mask)
    if values.shape != shape:
        raise InputError(
            f"mask has shape {values.shape} but the attribution has shape {shape}; "
            "pass the mask at the image's resolution"
        )
    if labels is not None:
        region = np.isin(values, list(labels))
    elif values.dtype == np.bool_:
        region = values
    else:
        raise InputError(
            f"mask has dtype {values.dtype}; pass a boolean mask of the target region, or "
            "integer labels with labels=[...] naming the region's values"
        )
    if not region.any():
        raise InputError(
            "the target region is empty (no mask pixel selected); these metrics need a "
            "region: skip cases without one (e.g. defect-free images)"
        )
    return region


def pointing_game(
    attribution: object,
    mask: object,
    *,
    labels: Collection[int] | None = None,
    tolerance: float = 1.0,
) -> bool:
    """Whether the map's maximum falls on the target region [3]_.

    A hit when *every* pixel holding the maximum attribution lies within
    ``tolerance`` pixels (Euclidean) of the region, so ties cannot score by
    luck (a constant map hits only if the region, widened, covers the image).

    Parameters
    ----------
    attribution : array-like
        ``(H, W)`` map (signed; its maximum is used).
    mask : array-like
        Boolean region, or integer labels with ``labels``.
    labels : collection of int, optional
        Mask values forming the target region.
    tolerance : float, default 1.0
        Widening of the region in pixels (0 for none).

    Returns
    -------
    bool
    """
    attr = check_map(attribution, "attribution")
    region = _region(mask, attr.shape, labels)
    if tolerance < 0:
        raise InputError(f"tolerance is {tolerance!r}; pass a distance in pixels >= 0")
    distance = ndimage.distance_transform_edt(~region)
    peaks = attr == attr.max()
    return bool(np.all(distance[peaks] <= tolerance))


def relevance_mass(
    attribution: object, mask: object, *, labels: Collection[int] | None = None
) -> float:
    """Share of the positive attribution inside the region [4]_.

    ``sum(max(a, 0)[region]) / sum(max(a, 0))``; NaN when the map has no positive value.
    """
    attr = check_map(attribution, "attribution")
    region = _region(mask, attr.shape, labels)
    positive = np.maximum(attr, 0.0)
    total = float(positive.sum())
    return float(positive[region].sum()) / total if total > 0 else float("nan")


def top_k_iou(
    attribution: object,
    mask: object,
    *,
    percent: float = 10.0,
    labels: Collection[int] | None = None,
    sign: Literal["positive", "absolute"] = "positive",
) -> float:
    """Intersection over union of the top ``percent`` % pixels with the region.

    The top-k set is :func:`~studyhub.explain.render.top_k_mask` of ``max(a, 0)``
    (or ``|a|``), the same pixels the rendering outlines.
    """
    attr = check_map(attribution, "attribution")
    region = _region(mask, attr.shape, labels)
    values = np.maximum(attr, 0.0) if sign == "positive" else np.abs(attr)
    top = top_k_mask(values, percent)
    union = int(np.sum(top | region))
    return float(np.sum(top & region)) / union


def randomization_rank_correlation(a: object, b: object, *, absolute: bool = True) -> float:
    """Spearman rank correlation of a map and its weight-randomised twin [5]_.

    High correlation means the map barely depends on the learned weights
    (it fails the model-randomisation sanity check). Adebayo et al. report the
    statistic on absolute values (``absolute=True``) and on signed values.
    NaN when either map is constant.

    Checked against :func:`scipy.stats.spearmanr` and hand-ranked 2×2 maps.
    """
    x = check_map(a, "attribution")
    y = check_map(b, "randomized attribution", shape=x.shape, against="the attribution")
    if absolute:
        x, y = np.abs(x), np.abs(y)
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(stats.spearmanr(x.ravel(), y.ravel()).statistic)
