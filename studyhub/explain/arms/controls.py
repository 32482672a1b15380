"""Control arms, blinded like any method: random, sobel, randomized_model, none.

A control answers "would raters have rated this just as well?": a smooth random
map (no model at all), an edge detector (the image, not the model), the same
method on a network with its weights re-initialised (the model's architecture
but not its training), and no map (the case alone).

References
----------
Adebayo, Gilmer, Muelly, Goodfellow, Hardt & Kim (2018). Sanity checks for
saliency maps. NeurIPS.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from scipy import ndimage
from torch import Tensor, nn

from studyhub.errors import InputError
from studyhub.explain.arms._base import (
    Arm,
    ParamReader,
    Preprocess,
    gaussian_blur,
    item_generators,
    seeded_global_rng,
)

__all__ = ["NoneArm", "RandomArm", "RandomizedModelArm", "SobelArm", "randomize_model"]


class RandomArm(Arm):
    """A smooth random map: Gaussian noise blurred by ``sigma`` pixels, scaled to [0, 1].

    The same map on every channel; drawn per item from its seed.

    Parameters (``params``)
    -----------------------
    sigma : float, default 4.0
        Blur in pixels; sets the size of the random blobs.
    """

    method = "random"
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
        filled = {"sigma": r.number("sigma", 4.0, minimum=0.0), "scale": "min-max to [0, 1]"}
        r.finish()
        super().__init__(model, filled)

    def _attribute(self, x: Tensor, target: Tensor, seeds: list[int]) -> Tensor:
        h, w = x.shape[2:]
        noise = torch.stack([torch.randn((1, h, w), generator=g) for g in item_generators(seeds)])
        smooth = gaussian_blur(noise.to(torch.float64), float(self.params["sigma"]))
        flat = smooth.flatten(1)
        low = flat.min(dim=1).values.view(-1, 1, 1, 1)
        span = (flat.max(dim=1).values.view(-1, 1, 1, 1) - low).clamp_min(1e-12)
        return ((smooth - low) / span).to(x.device).expand(-1, x.shape[1], -1, -1)

    def gradient_passes(self, n: int, *, image_size: tuple[int, int] | None = None) -> int:
        return 0


class SobelArm(Arm):
    """Sobel edge magnitude of the input image: structure a model need not use.

    ``hypot(sobel_x, sobel_y)`` of the channel mean, with scipy's Sobel kernels
    (``[1, 2, 1]`` smoothing times ``[-1, 0, 1]`` difference, edge pixels
    repeated), the same on every channel. No parameters.
    """

    method = "sobel"

    def __init__(
        self,
        model: nn.Module,
        params: dict[str, Any],
        *,
        preprocess: Preprocess | None = None,
        target_layer: str | None = None,
    ) -> None:
        r = ParamReader(self.method, params)
        r.finish()
        super().__init__(model, {"operator": "scipy.ndimage.sobel magnitude of the channel mean"})

    def _attribute(self, x: Tensor, target: Tensor, seeds: list[int]) -> Tensor:
        gray = x.detach().to("cpu", torch.float64).mean(dim=1).numpy()
        maps = np.stack(
            [np.hypot(ndimage.sobel(g, axis=1), ndimage.sobel(g, axis=0)) for g in gray]
        )
        return torch.from_numpy(maps).unsqueeze(1).to(x.device).expand(-1, x.shape[1], -1, -1)

    def gradient_passes(self, n: int, *, image_size: tuple[int, int] | None = None) -> int:
        return 0


def randomize_model(
    model: nn.Module, *, levels: int | None, seed: int
) -> tuple[nn.Module, list[str]]:
    """A deep copy of ``model`` with its top ``levels`` layers re-initialised (all when None).

    Layers are the modules that own parameters, taken from the output end back
    (reverse registration order); each is re-initialised with its own
    ``reset_parameters`` (BatchNorm also resets its running statistics), under a
    seeded, restored global RNG. The original model is not touched.

    Returns
    -------
    tuple of (torch.nn.Module, list of str)
        The randomised copy (same training/eval mode) and the names re-initialised, top first.
    """
    clone = copy.deepcopy(model)
    layers = [
        (name, module)
        for name, module in clone.named_modules()
        if any(True for _ in module.parameters(recurse=False))
    ][::-1]
    if levels is not None:
        layers = layers[:levels]
    with seeded_global_rng(seed, torch.device("cpu")):
        for _, module in layers:
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()
            else:
                for param in module.parameters(recurse=False):
                    with torch.no_grad():
                        param.normal_(0.0, 0.01)
    return clone, [name for name, _ in layers]


class RandomizedModelArm(Arm):
    """The cascading model-randomisation sanity check (Adebayo et al. 2018).

    Runs ``base_method`` on a copy of the model whose weights were re-initialised
    from the top layer down; a method whose map barely changes is not explaining
    the trained model. The copy is made once, here; the original is never touched.

    Parameters (``params``)
    -----------------------
    base_method : str, default "integrated_gradients"
        Any explanation method; its own parameters go in the same ``params``.
    levels : int or "all", default "all"
        How many parameterised layers, from the top, to re-initialise.
    model_seed : int, default 0
        Seed of the re-initialisation.
    """

    method = "randomized_model"

    def __init__(
        self,
        model: nn.Module,
        params: dict[str, Any],
        *,
        preprocess: Preprocess | None = None,
        target_layer: str | None = None,
    ) -> None:
        from studyhub.explain.arms.registry import METHOD_ARMS, build_arm

        given = dict(ParamReader(self.method, params).given)
        own = ParamReader(
            self.method,
            {k: given.pop(k) for k in ("base_method", "levels", "model_seed") if k in given},
        )
        base_method = own.choice("base_method", "integrated_gradients", tuple(METHOD_ARMS))
        levels_value = own.given.get("levels", "all")
        own.known.append("levels")
        if levels_value == "all":
            levels: int | None = None
        else:
            levels = own.integer("levels", 1)
        model_seed = own.integer("model_seed", 0, minimum=0)
        own.finish()
        randomized, names = randomize_model(model, levels=levels, seed=model_seed)
        if not names:
            raise InputError("randomized_model: the model has no parameters to re-initialise")
        self.base = build_arm(
            base_method, randomized, given, target_layer=target_layer, preprocess=preprocess
        )
        filled = {
            "base_method": base_method,
            "levels": "all" if levels is None else levels,
            "model_seed": model_seed,
            "randomized_layers": names,
            **self.base.params,
        }
        super().__init__(model, filled)
        self.deterministic = self.base.deterministic  # type: ignore[misc]
        self.randomized_model = randomized

    def _attribute(self, x: Tensor, target: Tensor, seeds: list[int]) -> Tensor:
        return self.base._attribute(x, target, seeds)

    def gradient_passes(self, n: int, *, image_size: tuple[int, int] | None = None) -> int:
        return self.base.gradient_passes(n, image_size=image_size)


class NoneArm(Arm):
    """No map: the case is shown alone. ``attribute`` returns zeros that must not be rendered."""

    method = "none"
    produces_map = False

    def __init__(
        self,
        model: nn.Module,
        params: dict[str, Any],
        *,
        preprocess: Preprocess | None = None,
        target_layer: str | None = None,
    ) -> None:
        r = ParamReader(self.method, params)
        r.finish()
        super().__init__(model, {"render": False})

    def _attribute(self, x: Tensor, target: Tensor, seeds: list[int]) -> Tensor:
        return torch.zeros_like(x)

    def gradient_passes(self, n: int, *, image_size: tuple[int, int] | None = None) -> int:
        return 0
