"""The registry: protocol method names to arm classes, and :func:`build_arm`."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any, cast

from torch import nn

from studyhub.errors import InputError
from studyhub.explain.arms._base import Arm, Preprocess
from studyhub.explain.arms.cam import GradCamArm, GuidedGradCamArm
from studyhub.explain.arms.controls import NoneArm, RandomArm, RandomizedModelArm, SobelArm
from studyhub.explain.arms.gradient import (
    DeepLiftArm,
    GradientShapArm,
    IntegratedGradientsArm,
    SaliencyArm,
    SmoothGradArm,
)
from studyhub.explain.arms.perturbation import OcclusionArm, RegionShapArm

__all__ = ["ARMS", "CONTROL_ARMS", "METHOD_ARMS", "build_arm"]

METHOD_ARMS: dict[str, type[Arm]] = {
    "integrated_gradients": IntegratedGradientsArm,
    "saliency": SaliencyArm,
    "smoothgrad": SmoothGradArm,
    "gradient_shap": GradientShapArm,
    "deeplift": DeepLiftArm,
    "occlusion": OcclusionArm,
    "gradcam": GradCamArm,
    "guided_gradcam": GuidedGradCamArm,
    "region_shap": RegionShapArm,
}
"""Explanation methods, keyed as in ``studyhub.protocol.schema.EXPLANATION_METHODS``."""

CONTROL_ARMS: dict[str, type[Arm]] = {
    "random": RandomArm,
    "sobel": SobelArm,
    "randomized_model": RandomizedModelArm,
    "none": NoneArm,
}
"""Controls, keyed as in ``studyhub.protocol.schema.CONTROL_METHODS``."""

ARMS: dict[str, type[Arm]] = {**METHOD_ARMS, **CONTROL_ARMS}
"""Every arm class by protocol method name."""


def build_arm(
    method: str,
    model: nn.Module,
    params: dict[str, Any] | None = None,
    *,
    target_layer: str | None = None,
    preprocess: Preprocess | None = None,
) -> Arm:
    """Build the arm a protocol names, its parameters checked and defaults filled.

    Parameters
    ----------
    method : str
        A protocol method name (:data:`ARMS`).
    model : torch.nn.Module
        The model in eval mode; never modified (``randomized_model`` works on a copy).
    params : dict, optional
        The arm's ``params`` from the protocol.
    target_layer : str, optional
        The protocol's ``model.target_layer``, used by Grad-CAM arms.
    preprocess : callable, optional
        The model entry point's preprocessing; when given, ``baseline: black``
        means a black image through it (else the input-space zero).

    Returns
    -------
    Arm
        Call ``arm.attribute(inputs, target, seed=...)``; ``arm.params`` is the provenance.

    Raises
    ------
    InputError
        For an unknown method, an unknown or invalid parameter, or a layer name
        the model lacks.

    Examples
    --------
    >>> from studyhub.demo.model import load
    >>> model, preprocess = load()
    >>> arm = build_arm("integrated_gradients", model, {"n_steps": 32}, preprocess=preprocess)
    >>> arm.params["n_steps"], arm.params["baseline"], arm.params["black_value"]
    (32, 'black', -2.5)
    """
    if method not in ARMS:
        close = difflib.get_close_matches(str(method), list(ARMS), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise InputError(f"unknown arm method {method!r}; {hint}use one of: {', '.join(ARMS)}")
    if not isinstance(model, nn.Module):
        raise InputError(
            f"{method} needs a torch.nn.Module but got a {type(model).__name__}; pass the "
            "model returned by the entry point"
        )
    factory = cast(Callable[..., Arm], ARMS[method])
    return factory(
        model, {} if params is None else params, preprocess=preprocess, target_layer=target_layer
    )
