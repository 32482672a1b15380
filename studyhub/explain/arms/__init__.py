"""Explanation arms: Captum attribution methods and controls behind one contract.

``build_arm(method, model, params, target_layer=..., preprocess=...)`` returns an
:class:`Arm` whose ``attribute(inputs, target, seed=...)`` gives a ``float32`` map
of the input's shape, whose ``params`` record every parameter used, and whose
``deterministic``, ``produces_map`` and ``gradient_passes`` describe it. See
:mod:`studyhub.explain.arms._base` for the seeding contract.
"""

from __future__ import annotations

from studyhub.explain.arms._base import BASELINES, Arm, SeedLike, gaussian_blur, item_seeds
from studyhub.explain.arms.cam import GradCamArm, GuidedGradCamArm, resolve_layer
from studyhub.explain.arms.controls import (
    NoneArm,
    RandomArm,
    RandomizedModelArm,
    SobelArm,
    randomize_model,
)
from studyhub.explain.arms.gradient import (
    DeepLiftArm,
    GradientShapArm,
    IntegratedGradientsArm,
    SaliencyArm,
    SmoothGradArm,
)
from studyhub.explain.arms.perturbation import OcclusionArm, RegionShapArm, slic_segments
from studyhub.explain.arms.registry import ARMS, CONTROL_ARMS, METHOD_ARMS, build_arm

__all__ = [
    "ARMS",
    "BASELINES",
    "CONTROL_ARMS",
    "METHOD_ARMS",
    "Arm",
    "DeepLiftArm",
    "GradCamArm",
    "GradientShapArm",
    "GuidedGradCamArm",
    "IntegratedGradientsArm",
    "NoneArm",
    "OcclusionArm",
    "RandomArm",
    "RandomizedModelArm",
    "RegionShapArm",
    "SaliencyArm",
    "SeedLike",
    "SmoothGradArm",
    "SobelArm",
    "build_arm",
    "gaussian_blur",
    "item_seeds",
    "randomize_model",
    "resolve_layer",
    "slic_segments",
]
