"""Gradient arms: Integrated Gradients, saliency, SmoothGrad, GradientSHAP, DeepLift.

Each wraps one Captum attribution object, built once in the constructor and
reused for every batch. SmoothGrad and GradientSHAP draw their random numbers
themselves, per item (see :mod:`studyhub.explain.arms._base`), because Captum's
:class:`~captum.attr.NoiseTunnel` and :class:`~captum.attr.GradientShap` draw
from the global generator for the whole batch at once, so batching would change
every item's noise; the gradients are still Captum's (:class:`~captum.attr.Saliency`
on the noisy or interpolated copies), and the formulas are NoiseTunnel's and
GradientShap's.

References
----------
Sundararajan, Taly & Yan (2017). Axiomatic attribution for deep networks. ICML.
Simonyan, Vedaldi & Zisserman (2014). Deep inside convolutional networks. ICLR workshop.
Smilkov, Thorat, Kim, Viégas & Wattenberg (2017). SmoothGrad: removing noise by adding noise.
Lundberg & Lee (2017). A unified approach to interpreting model predictions. NeurIPS.
Shrikumar, Greenside & Kundaje (2017). Learning important features through propagating
activation differences. ICML.
"""

from __future__ import annotations

from typing import Any

import torch
from captum.attr import DeepLift, IntegratedGradients, Saliency
from torch import Tensor, nn

from studyhub.explain.arms._base import (
    Arm,
    ParamReader,
    Preprocess,
    item_generators,
    make_baseline,
    read_baseline,
)

__all__ = [
    "DeepLiftArm",
    "GradientShapArm",
    "IntegratedGradientsArm",
    "SaliencyArm",
    "SmoothGradArm",
]


def _default_batch(model: nn.Module) -> int:
    """Rows per forward+backward pass: 32 on the CPU, 512 on an accelerator.

    On the CPU, passes of more rows are slower per row, not faster: with the demo
    model on 2 cores, Integrated Gradients over 32 images × 32 steps cost 1.08×
    its raw passes in chunks of 32 rows, 1.6× in chunks of 64 and 2.8× in
    chunks of 512 (large activation blocks are returned to the system and
    page-faulted again on every pass). Accelerators want large batches.
    """
    param = next(iter(model.parameters()), None)
    return 32 if param is None or param.device.type == "cpu" else 512


class IntegratedGradientsArm(Arm):
    """Integrated Gradients from a baseline to the input (Sundararajan et al. 2017).

    Parameters (``params``)
    -----------------------
    n_steps : int, default 50
        Points of the path integral.
    method : str, default "gausslegendre"
        Captum's quadrature: gausslegendre, riemann_trapezoid, riemann_left, ...
    baseline : {"black", "mean", "blur"}, default "black"
        See :data:`~studyhub.explain.arms._base.BASELINES`; with ``black_value``
        (default: a black image through ``preprocess``) or ``blur_sigma`` (5.0 px).
    internal_batch_size : int, default 32 on the CPU, 512 on an accelerator
        Most rows per forward+backward pass; bounds memory. N·n_steps rows are
        cut into chunks of whole steps (at least one step of all N inputs).
    """

    method = "integrated_gradients"

    def __init__(
        self,
        model: nn.Module,
        params: dict[str, Any],
        *,
        preprocess: Preprocess | None = None,
        target_layer: str | None = None,
    ) -> None:
        r = ParamReader(self.method, params)
        filled: dict[str, Any] = {
            "n_steps": r.integer("n_steps", 50),
            "method": r.choice(
                "method",
                "gausslegendre",
                (
                    "gausslegendre",
                    "riemann_trapezoid",
                    "riemann_left",
                    "riemann_right",
                    "riemann_middle",
                ),
            ),
            **read_baseline(r, preprocess),
            "internal_batch_size": r.integer("internal_batch_size", _default_batch(model)),
            "multiply_by_inputs": True,
        }
        r.finish()
        super().__init__(model, filled)
        self._ig = IntegratedGradients(model)

    def baselines(self, inputs: Tensor) -> Tensor:
        """The baseline tensor used for ``inputs``."""
        return make_baseline(inputs.detach(), self.params)

    def _attribute(self, x: Tensor, target: Tensor, seeds: list[int]) -> Tensor:
        p = self.params
        return self._ig.attribute(
            x,
            baselines=make_baseline(x, p),
            target=target,
            n_steps=p["n_steps"],
            method=p["method"],
            internal_batch_size=max(p["internal_batch_size"], x.shape[0]),
        )

    def convergence_delta(self, inputs: Tensor, target: Tensor, attributions: Tensor) -> Tensor:
        """Captum's completeness gap ``sum(attr) - (f(x) - f(baseline))`` per input."""
        x = inputs.detach()
        return self._ig.compute_convergence_delta(
            attributions, start_point=make_baseline(x, self.params), end_point=x, target=target
        )

    def gradient_passes(self, n: int, *, image_size: tuple[int, int] | None = None) -> int:
        return n * int(self.params["n_steps"])


class SaliencyArm(Arm):
    """Vanilla gradient saliency (Simonyan et al. 2014).

    Parameters (``params``)
    -----------------------
    abs : bool, default True
        Absolute value of the gradient (Simonyan's map); false keeps its sign.
    """

    method = "saliency"

    def __init__(
        self,
        model: nn.Module,
        params: dict[str, Any],
        *,
        preprocess: Preprocess | None = None,
        target_layer: str | None = None,
    ) -> None:
        r = ParamReader(self.method, params)
        filled = {"abs": r.boolean("abs", True)}
        r.finish()
        super().__init__(model, filled)
        self._saliency = Saliency(model)

    def _attribute(self, x: Tensor, target: Tensor, seeds: list[int]) -> Tensor:
        return self._saliency.attribute(x, target=target, abs=self.params["abs"])

    def gradient_passes(self, n: int, *, image_size: tuple[int, int] | None = None) -> int:
        return n


def _noise_stdevs(x: Tensor, params: dict[str, Any]) -> Tensor:
    """Per-item noise standard deviation: ``stdevs`` or ``noise_level·(max − min)``."""
    if params["stdevs"] is not None:
        return torch.full((x.shape[0],), float(params["stdevs"]), dtype=x.dtype)
    flat = x.detach().to("cpu").flatten(1)
    return params["noise_level"] * (flat.max(dim=1).values - flat.min(dim=1).values)


def _read_noise(r: ParamReader, default_level: float) -> dict[str, Any]:
    return {
        "noise_level": r.number("noise_level", default_level, minimum=0.0),
        "stdevs": r.number("stdevs", None, minimum=0.0),
    }


def _gradients(saliency: Saliency, x: Tensor, target: Tensor, batch: int, abs_: bool) -> Tensor:
    """Captum gradients of ``x`` in chunks of ``batch`` rows."""
    parts = [
        saliency.attribute(x[i : i + batch], target=target[i : i + batch], abs=abs_)
        for i in range(0, x.shape[0], batch)
    ]
    return torch.cat(parts)


class SmoothGradArm(Arm):
    """SmoothGrad: saliency averaged over noisy copies (Smilkov et al. 2017).

    Equal to Captum's ``NoiseTunnel(Saliency(model)).attribute(nt_type="smoothgrad")``
    with the noise drawn per item from its seed (module docstring).

    Parameters (``params``)
    -----------------------
    nt_samples : int, default 25
        Noisy copies per input.
    noise_level : float, default 0.15
        Noise standard deviation as a share of each input's ``max − min``
        (Smilkov et al. found 10–20% best).
    stdevs : float or None, default None
        Absolute standard deviation; overrides ``noise_level`` when set.
    abs : bool, default True
        Average the absolute gradients (as ``NoiseTunnel(Saliency)`` does by default).
    internal_batch_size : int, default 32 on the CPU, 512 on an accelerator
        Most noisy copies per forward+backward pass.
    """

    method = "smoothgrad"
    deterministic = False

    def __init__(
        self,
        model: nn.Module,
        params: dict[str, Any],
        *,
        preprocess: Preprocess | None = None,
        target_layer: str | None = None,
    ) -> None:
        r = ParamReader(self.method, params)
        filled = {
            "nt_samples": r.integer("nt_samples", 25),
            **_read_noise(r, 0.15),
            "abs": r.boolean("abs", True),
            "internal_batch_size": r.integer("internal_batch_size", _default_batch(model)),
            "nt_type": "smoothgrad",
        }
        r.finish()
        super().__init__(model, filled)
        self._saliency = Saliency(model)

    def _attribute(self, x: Tensor, target: Tensor, seeds: list[int]) -> Tensor:
        p = self.params
        k = p["nt_samples"]
        sd = _noise_stdevs(x, p)
        noise = torch.stack(
            [
                torch.randn((k, *x.shape[1:]), generator=g) * s
                for g, s in zip(item_generators(seeds), sd, strict=True)
            ]
        ).to(x.device, x.dtype)
        noisy = (x.unsqueeze(1) + noise).flatten(0, 1)
        grads = _gradients(
            self._saliency, noisy, target.repeat_interleave(k), p["internal_batch_size"], p["abs"]
        )
        return grads.view(x.shape[0], k, *x.shape[1:]).mean(dim=1)

    def gradient_passes(self, n: int, *, image_size: tuple[int, int] | None = None) -> int:
        return n * int(self.params["nt_samples"])


class GradientShapArm(Arm):
    """GradientSHAP: expected gradients over random baselines (Lundberg & Lee 2017).

    For each of ``n_samples`` draws per input: a baseline ``b`` (fresh uniform noise
    over the input's own ``[min, max]``, or the fixed ``black``/``mean``/``blur``
    baseline), ``α ~ U(0, 1)`` and optional input noise ``ε``; the attribution is
    the mean of ``∇f(b + α(x + ε − b)) · (x + ε − b)`` — Captum's GradientShap
    formula (``NoiseTunnel`` over ``InputBaselineXGradient``) with the draws made
    per item: noise (only when its standard deviation is above 0), then
    baseline, then α.

    Parameters (``params``)
    -----------------------
    n_samples : int, default 25
        Draws per input.
    baseline : {"uniform", "black", "mean", "blur"}, default "uniform"
    noise_level : float, default 0.0
        Input noise as a share of ``max − min`` (Captum's ``stdevs``, relative).
    stdevs : float or None, default None
        Absolute input noise; overrides ``noise_level``.
    internal_batch_size : int, default 32 on the CPU, 512 on an accelerator
        Most interpolated points per forward+backward pass.
    """

    method = "gradient_shap"
    deterministic = False

    def __init__(
        self,
        model: nn.Module,
        params: dict[str, Any],
        *,
        preprocess: Preprocess | None = None,
        target_layer: str | None = None,
    ) -> None:
        r = ParamReader(self.method, params)
        n_samples = r.integer("n_samples", 25)
        kind = r.choice("baseline", "uniform", ("uniform", "black", "mean", "blur"))
        if kind == "uniform":
            base: dict[str, Any] = {"baseline": "uniform"}
        else:
            base = read_baseline(r, preprocess)
        filled = {
            "n_samples": n_samples,
            **base,
            **_read_noise(r, 0.0),
            "internal_batch_size": r.integer("internal_batch_size", _default_batch(model)),
        }
        r.finish()
        super().__init__(model, filled)
        self._saliency = Saliency(model)

    def _attribute(self, x: Tensor, target: Tensor, seeds: list[int]) -> Tensor:
        p = self.params
        k, n = p["n_samples"], x.shape[0]
        cpu = x.detach().to("cpu")
        sd = _noise_stdevs(x, p)
        fixed = None if p["baseline"] == "uniform" else make_baseline(cpu, p)
        noisy, bases, alphas = [], [], []
        shape = (k, *x.shape[1:])
        for i, g in enumerate(item_generators(seeds)):
            eps = torch.randn(shape, generator=g) * sd[i] if sd[i] > 0 else torch.zeros(shape)
            if fixed is None:
                low, high = cpu[i].min(), cpu[i].max()
                b = low + (high - low) * torch.rand(shape, generator=g)
            else:
                b = fixed[i].expand(shape)
            noisy.append(cpu[i] + eps)
            bases.append(b)
            alphas.append(torch.rand((k, 1, 1, 1), generator=g))
        xn = torch.stack(noisy).flatten(0, 1).to(x.device, x.dtype)
        b_all = torch.stack(bases).flatten(0, 1).to(x.device, x.dtype)
        a_all = torch.stack(alphas).flatten(0, 1).to(x.device, x.dtype)
        points = b_all + a_all * (xn - b_all)
        grads = _gradients(
            self._saliency, points, target.repeat_interleave(k), p["internal_batch_size"], False
        )
        return (grads * (xn - b_all)).view(n, k, *x.shape[1:]).mean(dim=1)

    def gradient_passes(self, n: int, *, image_size: tuple[int, int] | None = None) -> int:
        return n * int(self.params["n_samples"])


class DeepLiftArm(Arm):
    """DeepLift with the Rescale rule, Captum's implementation (Shrikumar et al. 2017).

    Summation-to-delta (attributions add up to ``f(x) − f(baseline)``) holds for
    convolutions, BatchNorm, ReLU and average pooling. Captum's rule for max
    pooling does not keep it: on the demo model, which max-pools, the sums miss
    the logit gap by 0.5 to 7 logits (checked: the gap is 0 once its max pools
    are replaced by identity and average pooling). Prefer Integrated Gradients
    where completeness matters on such models.

    Cost: a forward and backward over the input and its baseline (two rows per
    input), plus the extra work of Captum's rules (max pooling is unpooled and
    re-pooled, every nonlinearity rescaled): about 2.5 times that bound on the
    demo CNN (``benchmarks/explain_bench.py``), still cheaper per map than
    Integrated Gradients.

    Parameters (``params``)
    -----------------------
    baseline : {"black", "mean", "blur"}, default "black"
        As for Integrated Gradients.
    internal_batch_size : int, default 32 on the CPU, 512 on an accelerator
        Most rows per pass; Captum runs inputs and baselines together, so a
        chunk holds half as many inputs.
    """

    method = "deeplift"

    def __init__(
        self,
        model: nn.Module,
        params: dict[str, Any],
        *,
        preprocess: Preprocess | None = None,
        target_layer: str | None = None,
    ) -> None:
        r = ParamReader(self.method, params)
        filled = {
            **read_baseline(r, preprocess),
            "internal_batch_size": r.integer("internal_batch_size", _default_batch(model)),
            "rule": "rescale",
            "multiply_by_inputs": True,
        }
        r.finish()
        super().__init__(model, filled)
        self._deeplift = DeepLift(model)

    def baselines(self, inputs: Tensor) -> Tensor:
        """The baseline tensor used for ``inputs``."""
        return make_baseline(inputs.detach(), self.params)

    def _attribute(self, x: Tensor, target: Tensor, seeds: list[int]) -> Tensor:
        step = max(1, self.params["internal_batch_size"] // 2)
        baselines = make_baseline(x, self.params)
        parts = [
            self._deeplift.attribute(
                x[i : i + step], baselines=baselines[i : i + step], target=target[i : i + step]
            )
            for i in range(0, x.shape[0], step)
        ]
        return torch.cat(parts)

    def gradient_passes(self, n: int, *, image_size: tuple[int, int] | None = None) -> int:
        # The Rescale rule needs the activations of the input and of its baseline:
        # each input is a forward and backward over two rows.
        return 2 * n
