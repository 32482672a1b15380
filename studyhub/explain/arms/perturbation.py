"""Perturbation arms: occlusion, and Shapley values over superpixels (``region_shap``).

References
----------
Zeiler & Fergus (2014). Visualizing and understanding convolutional networks. ECCV.
Lundberg & Lee (2017). A unified approach to interpreting model predictions. NeurIPS.
Achanta, Shaji, Smith, Lucchi, Fua & Süsstrunk (2012). SLIC superpixels compared to
state-of-the-art superpixel methods. IEEE TPAMI 34(11).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from captum.attr import KernelShap, Occlusion
from numpy.typing import NDArray
from skimage.segmentation import slic
from torch import Tensor, nn

from studyhub.errors import InputError
from studyhub.explain.arms._base import (
    Arm,
    ParamReader,
    Preprocess,
    make_baseline,
    read_baseline,
    seeded_global_rng,
)

__all__ = ["OcclusionArm", "RegionShapArm", "slic_segments"]


class OcclusionArm(Arm):
    """Occlusion: the drop of the target logit when a square patch is set to the baseline.

    Parameters (``params``)
    -----------------------
    window : int, default 8
        Side of the square patch in pixels (all channels at once).
    stride : int, default 4
        Step between patches.
    baseline : {"black", "mean", "blur"}, default "black"
    perturbations_per_eval : int, default 64
        Patches evaluated per forward pass.
    """

    method = "occlusion"

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
            "window": r.integer("window", 8),
            "stride": r.integer("stride", 4),
            **read_baseline(r, preprocess),
            "perturbations_per_eval": r.integer("perturbations_per_eval", 64),
        }
        r.finish()
        super().__init__(model, filled)
        self._occlusion = Occlusion(model)

    def _attribute(self, x: Tensor, target: Tensor, seeds: list[int]) -> Tensor:
        p = self.params
        c, h, w = x.shape[1:]
        if p["window"] > min(h, w):
            raise InputError(
                f"occlusion window {p['window']} exceeds the {h}×{w} image; "
                f"use a window <= {min(h, w)}"
            )
        return self._occlusion.attribute(
            x,
            sliding_window_shapes=(c, p["window"], p["window"]),
            strides=(c, p["stride"], p["stride"]),
            baselines=make_baseline(x, p),
            target=target,
            perturbations_per_eval=p["perturbations_per_eval"],
        )

    def gradient_passes(self, n: int, *, image_size: tuple[int, int] | None = None) -> int:
        """Forward passes (no backward): one per patch position per input, plus one."""
        if image_size is None:
            raise InputError(
                "occlusion gradient_passes needs image_size=(H, W); pass the input size"
            )
        w, s = self.params["window"], self.params["stride"]
        per_axis = [math.floor((size - w) / s) + 1 for size in image_size]
        return n * (per_axis[0] * per_axis[1] + 1)


def slic_segments(
    image: NDArray[np.floating[Any]], n_segments: int, compactness: float, sigma: float = 1.0
) -> NDArray[np.int64]:
    """SLIC superpixels of one grayscale image, labels 0..K-1.

    The image is scaled to [0, 1] by its own minimum and maximum first, so
    ``compactness`` means the same for any preprocessing; ``sigma`` is SLIC's
    Gaussian pre-smoothing in pixels (without it, sensor noise fragments the
    regions and connectivity enforcement merges them into one).
    """
    gray = np.asarray(image, dtype=np.float64)
    span = float(gray.max() - gray.min())
    gray = (gray - gray.min()) / span if span > 0 else np.zeros_like(gray)
    labels = slic(
        gray,
        n_segments=n_segments,
        compactness=compactness,
        sigma=sigma,
        channel_axis=None,
        start_label=0,
    )
    _, dense = np.unique(labels, return_inverse=True)
    return dense.reshape(gray.shape).astype(np.int64)


class RegionShapArm(Arm):
    """Shapley values of SLIC superpixels, estimated with Captum's KernelShap.

    Each input is cut into superpixels (SLIC on the channel mean); a coalition
    keeps some regions and sets the others to the baseline; KernelShap fits the
    Shapley values of the regions to ``n_samples`` coalitions. Every pixel gets
    its region's value, so experts see whole regions ranked.

    Parameters (``params``)
    -----------------------
    n_segments : int, default 50
        Approximate number of superpixels (SLIC's ``n_segments``).
    compactness : float, default 0.1
        SLIC's balance of intensity similarity against square shape, on the
        image scaled to [0, 1]; larger gives more square regions.
    slic_sigma : float, default 1.0
        SLIC's Gaussian pre-smoothing in pixels.
    n_samples : int, default 200
        Coalitions evaluated per input (KernelShap).
    baseline : {"black", "mean", "blur"}, default "black"
        Value of the regions left out.
    perturbations_per_eval : int, default 64
        Coalitions per forward pass.
    """

    method = "region_shap"
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
            "n_segments": r.integer("n_segments", 50, minimum=2),
            "compactness": r.number("compactness", 0.1, minimum=0.0, strict=True),
            "slic_sigma": r.number("slic_sigma", 1.0, minimum=0.0),
            "slic_on": "channel mean scaled to [0, 1]",
            "n_samples": r.integer("n_samples", 200, minimum=2),
            **read_baseline(r, preprocess),
            "perturbations_per_eval": r.integer("perturbations_per_eval", 64),
            "estimator": "captum.attr.KernelShap",
        }
        r.finish()
        super().__init__(model, filled)
        self._shap = KernelShap(model)

    def segments(self, inputs: Tensor) -> NDArray[np.int64]:
        """The superpixel labels ``(N, H, W)`` of each input (what the map is constant on)."""
        gray = inputs.detach().to("cpu", torch.float64).mean(dim=1).numpy()
        p = self.params
        return np.stack(
            [slic_segments(g, p["n_segments"], p["compactness"], p["slic_sigma"]) for g in gray]
        )

    def _attribute(self, x: Tensor, target: Tensor, seeds: list[int]) -> Tensor:
        p = self.params
        masks = torch.from_numpy(self.segments(x)).to(x.device)
        baselines = make_baseline(x, p)
        out = []
        for i, s in enumerate(seeds):
            mask = masks[i].expand(x.shape[1], -1, -1).unsqueeze(0)
            with seeded_global_rng(s, x.device):
                out.append(
                    self._shap.attribute(
                        x[i : i + 1],
                        baselines=baselines[i : i + 1],
                        target=target[i : i + 1],
                        feature_mask=mask,
                        n_samples=p["n_samples"],
                        perturbations_per_eval=p["perturbations_per_eval"],
                    )
                )
        return torch.cat(out)

    def gradient_passes(self, n: int, *, image_size: tuple[int, int] | None = None) -> int:
        """Forward passes (no backward): ``n_samples`` coalitions per input."""
        return n * int(self.params["n_samples"])
