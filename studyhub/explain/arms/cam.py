"""Class-activation arms on a named layer: Grad-CAM and guided Grad-CAM.

The layer comes from the arm's ``layer`` parameter, else the protocol's
``model.target_layer``, else the model's last :class:`torch.nn.Conv2d`; the
name used is recorded in ``params["layer"]``.

References
----------
Selvaraju, Cogswell, Das, Vedantam, Parikh & Batra (2017). Grad-CAM: visual
explanations from deep networks via gradient-based localization. ICCV.
"""

from __future__ import annotations

import difflib
from typing import Any

from captum.attr import GuidedGradCam, LayerAttribution, LayerGradCam
from torch import Tensor, nn

from studyhub.errors import InputError
from studyhub.explain.arms._base import Arm, ParamReader, Preprocess

__all__ = ["GradCamArm", "GuidedGradCamArm", "resolve_layer"]

_MODES = ("bilinear", "nearest", "bicubic", "area")


def resolve_layer(
    model: nn.Module, name: str | None, *, method: str = "gradcam"
) -> tuple[str, nn.Module]:
    """Find a layer by qualified name (``"features.conv3"``), or the last Conv2d when None.

    Raises
    ------
    InputError
        If no module has that name (the message lists similar names) or, with
        no name, the model has no Conv2d.
    """
    names = {n: m for n, m in model.named_modules() if n}
    if name is None:
        convs = [n for n, m in names.items() if isinstance(m, nn.Conv2d)]
        if not convs:
            raise InputError(
                f"{method} needs a convolutional layer but the model has no Conv2d; "
                "set model.target_layer (or the arm's layer parameter) to a module name"
            )
        return convs[-1], names[convs[-1]]
    if name not in names:
        close = difflib.get_close_matches(name, list(names), n=3, cutoff=0.5)
        similar = f"similar names: {', '.join(close)}" if close else "no similar names"
        raise InputError(
            f"{method} layer {name!r} is not in the model ({similar}); set model.target_layer "
            "(or the arm's layer parameter) to one of the model's module names, "
            "as listed by model.named_modules()"
        )
    return name, names[name]


def _read_layer(
    r: ParamReader, model: nn.Module, target_layer: str | None
) -> tuple[str, nn.Module]:
    given = r.text("layer", None)
    return resolve_layer(model, given if given is not None else target_layer, method=r.method)


class GradCamArm(Arm):
    """Grad-CAM on a named layer, upsampled to the input and broadcast over channels.

    Parameters (``params``)
    -----------------------
    layer : str, default the protocol's ``target_layer`` or the last Conv2d
    relu_attributions : bool, default True
        Keep only positive evidence, as Selvaraju et al. do.
    interpolate_mode : str, default "bilinear"
        Upsampling of the layer map to the input size.
    """

    method = "gradcam"

    def __init__(
        self,
        model: nn.Module,
        params: dict[str, Any],
        *,
        preprocess: Preprocess | None = None,
        target_layer: str | None = None,
    ) -> None:
        r = ParamReader(self.method, params)
        name, layer = _read_layer(r, model, target_layer)
        filled = {
            "layer": name,
            "relu_attributions": r.boolean("relu_attributions", True),
            "interpolate_mode": r.choice("interpolate_mode", "bilinear", _MODES),
        }
        r.finish()
        super().__init__(model, filled)
        self._cam = LayerGradCam(model, layer)

    def _attribute(self, x: Tensor, target: Tensor, seeds: list[int]) -> Tensor:
        cam = self._cam.attribute(
            x, target=target, relu_attributions=self.params["relu_attributions"]
        )
        up = LayerAttribution.interpolate(
            cam, tuple(x.shape[2:]), interpolate_mode=self.params["interpolate_mode"]
        )
        return up.expand(-1, x.shape[1], -1, -1)

    def gradient_passes(self, n: int, *, image_size: tuple[int, int] | None = None) -> int:
        return n


class GuidedGradCamArm(Arm):
    """Guided Grad-CAM: guided backpropagation times the upsampled Grad-CAM map.

    Parameters (``params``)
    -----------------------
    layer : str, default the protocol's ``target_layer`` or the last Conv2d
    interpolate_mode : str, default "bilinear"
    """

    method = "guided_gradcam"

    def __init__(
        self,
        model: nn.Module,
        params: dict[str, Any],
        *,
        preprocess: Preprocess | None = None,
        target_layer: str | None = None,
    ) -> None:
        r = ParamReader(self.method, params)
        name, layer = _read_layer(r, model, target_layer)
        filled = {
            "layer": name,
            "interpolate_mode": r.choice("interpolate_mode", "bilinear", _MODES),
            "relu_attributions": True,
        }
        r.finish()
        super().__init__(model, filled)
        self._guided = GuidedGradCam(model, layer)

    def _attribute(self, x: Tensor, target: Tensor, seeds: list[int]) -> Tensor:
        return self._guided.attribute(
            x, target=target, interpolate_mode=self.params["interpolate_mode"]
        )

    def gradient_passes(self, n: int, *, image_size: tuple[int, int] | None = None) -> int:
        return 2 * n
