"""The parameters each arm method accepts: one schema per method, checked at validate time.

An arm's ``params`` are validated against the schema of its ``method`` (unknown
names, wrong types and values out of range are refused with the file, line and
key), but stored and hashed exactly as written. The names, defaults and ranges
follow what :mod:`studyhub.explain.arms` reads; ``tests/explain/test_arms.py``
checks that every setting these schemas accept builds its arm, and that the
values explain refuses are refused here too.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Annotated, Any, Literal, get_args

from pydantic import Field, create_model, model_validator

from studyhub.protocol._base import NOT_NULL, SEED_LIMIT, Settings

__all__ = [
    "ARM_PARAMS",
    "CONTROL_METHODS",
    "EXPLANATION_METHODS",
    "ControlMethod",
    "ExplanationMethod",
    "params_model",
]

#: Attribution methods an arm may name (computed with Captum, see ``studyhub.explain``).
ExplanationMethod = Literal[
    "integrated_gradients",
    "saliency",
    "smoothgrad",
    "gradient_shap",
    "deeplift",
    "occlusion",
    "gradcam",
    "guided_gradcam",
    "region_shap",
]
#: Control arms, blinded like any method.
ControlMethod = Literal["random", "sobel", "randomized_model", "none"]
EXPLANATION_METHODS: tuple[str, ...] = get_args(ExplanationMethod)
CONTROL_METHODS: tuple[str, ...] = get_args(ControlMethod)

#: The most samples, steps or coalitions one map may take (a guard against typos).
MAX_SAMPLES = 100_000
#: The largest blur or smoothing, in pixels.
MAX_SIGMA_PX = 1000.0

#: One value per channel.
_Channels = Annotated[list[float], Field(min_length=1, max_length=64)]

_BATCH = Field(
    default=None,
    ge=1,
    le=1_000_000,
    description="most rows per forward+backward pass, bounding memory; default 32 on the CPU, "
    "512 on an accelerator",
)
_PER_EVAL = Field(
    default=64, ge=1, le=1_000_000, description="perturbed inputs evaluated per forward pass"
)
_NOISE_LEVEL = "noise standard deviation as a share of each input's max - min"
_STDEVS = Field(
    default=None,
    ge=0.0,
    description="absolute noise standard deviation; overrides noise_level when set (null: unset)",
)


class _Params(Settings):
    noun = "parameter"


class _Baseline(_Params):
    """The reference input of path and perturbation methods."""

    baseline: Literal["black", "mean", "blur"] = Field(
        default="black",
        description="black: a black image through the model's preprocessing; mean: each "
        "channel at the image's own mean; blur: the image blurred by blur_sigma",
    )
    black_value: Annotated[float | _Channels | None, NOT_NULL] = Field(
        default=None,
        description="the value of black after preprocessing, one number or one per channel; "
        "default: a black image through the entry point's preprocess",
    )
    blur_sigma: float = Field(
        default=5.0,
        gt=0.0,
        le=MAX_SIGMA_PX,
        description="Gaussian blur of the blur baseline, in pixels",
    )


class IntegratedGradientsParams(_Baseline):
    """Integrated Gradients from a baseline to the input (Sundararajan et al. 2017)."""

    owner = "integrated_gradients"
    n_steps: int = Field(default=50, ge=1, le=10_000, description="points of the path integral")
    method: Literal[
        "gausslegendre", "riemann_trapezoid", "riemann_left", "riemann_right", "riemann_middle"
    ] = Field(default="gausslegendre", description="Captum's quadrature rule")
    internal_batch_size: Annotated[int | None, NOT_NULL] = _BATCH


class SaliencyParams(_Params):
    """Vanilla gradient saliency (Simonyan et al. 2014)."""

    owner = "saliency"
    abs: bool = Field(
        default=True, description="absolute value of the gradient; false keeps its sign"
    )


class SmoothGradParams(_Params):
    """SmoothGrad: saliency averaged over noisy copies (Smilkov et al. 2017)."""

    owner = "smoothgrad"
    nt_samples: int = Field(default=25, ge=1, le=MAX_SAMPLES, description="noisy copies per input")
    noise_level: float = Field(default=0.15, ge=0.0, description=_NOISE_LEVEL)
    stdevs: float | None = _STDEVS
    abs: bool = Field(default=True, description="average the absolute gradients")
    internal_batch_size: Annotated[int | None, NOT_NULL] = _BATCH


class GradientShapParams(_Params):
    """GradientSHAP: expected gradients over random baselines (Lundberg & Lee 2017)."""

    owner = "gradient_shap"
    n_samples: int = Field(default=25, ge=1, le=MAX_SAMPLES, description="draws per input")
    baseline: Literal["uniform", "black", "mean", "blur"] = Field(
        default="uniform",
        description="uniform: fresh noise over the input's own range per draw; black, mean, "
        "blur: one fixed baseline as for integrated_gradients",
    )
    black_value: Annotated[float | _Channels | None, NOT_NULL] = Field(
        default=None,
        description="baseline black only: the value of black after preprocessing",
    )
    blur_sigma: float = Field(
        default=5.0,
        gt=0.0,
        le=MAX_SIGMA_PX,
        description="baseline blur only: Gaussian blur in pixels",
    )
    noise_level: float = Field(default=0.0, ge=0.0, description=_NOISE_LEVEL)
    stdevs: float | None = _STDEVS
    internal_batch_size: Annotated[int | None, NOT_NULL] = _BATCH

    @model_validator(mode="after")
    def _fixed_baseline_only(self) -> GradientShapParams:
        extra = sorted({"black_value", "blur_sigma"} & self.model_fields_set)
        if self.baseline == "uniform" and extra:
            verb = "applies" if len(extra) == 1 else "apply"
            raise ValueError(
                f"{' and '.join(extra)} {verb} to a black, mean or blur baseline, not to "
                f"baseline uniform; remove {'it' if len(extra) == 1 else 'them'} or set "
                "baseline: black (or mean, blur)"
            )
        return self


class DeepLiftParams(_Baseline):
    """DeepLift with the Rescale rule (Shrikumar et al. 2017)."""

    owner = "deeplift"
    internal_batch_size: Annotated[int | None, NOT_NULL] = _BATCH


class OcclusionParams(_Baseline):
    """Occlusion: the drop of the target logit when a square patch is set to the baseline."""

    owner = "occlusion"
    window: int = Field(default=8, ge=1, le=4096, description="side of the square patch, pixels")
    stride: int = Field(default=4, ge=1, le=4096, description="step between patches, pixels")
    perturbations_per_eval: int = _PER_EVAL


_LAYER = Field(
    default=None,
    min_length=1,
    description="the layer's qualified name (e.g. features.conv3); default model.target_layer, "
    "else the model's last Conv2d",
)
_MODE = "upsampling of the layer map to the input size"


class GradCamParams(_Params):
    """Grad-CAM on a named layer (Selvaraju et al. 2017)."""

    owner = "gradcam"
    layer: str | None = _LAYER
    relu_attributions: bool = Field(default=True, description="keep only positive evidence")
    interpolate_mode: Literal["bilinear", "nearest", "bicubic", "area"] = Field(
        default="bilinear", description=_MODE
    )


class GuidedGradCamParams(_Params):
    """Guided Grad-CAM: guided backpropagation times the upsampled Grad-CAM map."""

    owner = "guided_gradcam"
    layer: str | None = _LAYER
    interpolate_mode: Literal["bilinear", "nearest", "bicubic", "area"] = Field(
        default="bilinear", description=_MODE
    )


class RegionShapParams(_Baseline):
    """Shapley values of SLIC superpixels, estimated with Captum's KernelShap."""

    owner = "region_shap"
    n_segments: int = Field(
        default=50, ge=2, le=10_000, description="approximate number of superpixels"
    )
    compactness: float = Field(
        default=0.1,
        gt=0.0,
        description="SLIC's balance of intensity against square shape, image scaled to [0, 1]",
    )
    slic_sigma: float = Field(
        default=1.0, ge=0.0, le=MAX_SIGMA_PX, description="SLIC's Gaussian pre-smoothing, pixels"
    )
    n_samples: int = Field(
        default=200, ge=2, le=MAX_SAMPLES, description="coalitions evaluated per input"
    )
    perturbations_per_eval: int = _PER_EVAL


class RandomParams(_Params):
    """A smooth random map: Gaussian noise blurred by sigma pixels, scaled to [0, 1]."""

    owner = "random"
    sigma: float = Field(
        default=4.0, ge=0.0, le=MAX_SIGMA_PX, description="blur in pixels (size of the blobs)"
    )


class SobelParams(_Params):
    """Sobel edge magnitude of the input image; no parameters."""

    owner = "sobel"


class NoneParams(_Params):
    """No map: the case is shown alone; no parameters."""

    owner = "none"


class RandomizedModelParams(_Params):
    """Cascading model randomisation (Adebayo et al. 2018); the base method's own
    parameters go in the same params."""

    owner = "randomized_model"
    base_method: ExplanationMethod = Field(
        default="integrated_gradients", description="the explanation method to run"
    )
    levels: Literal["all"] | Annotated[int, Field(ge=1, le=10_000)] = Field(
        default="all",
        description="how many parameterised layers, from the top, to re-initialise (or all)",
    )
    model_seed: int = Field(
        default=0, ge=0, lt=SEED_LIMIT, description="seed of the re-initialisation"
    )


class _RandomizedModelAlone(RandomizedModelParams, extra="ignore"):
    """Used when base_method itself is wrong: report that, not every other key."""


#: The schema of each method's params (randomized_model adds its base method's).
ARM_PARAMS: dict[str, type[Settings]] = {
    m.owner: m
    for m in (
        IntegratedGradientsParams,
        SaliencyParams,
        SmoothGradParams,
        GradientShapParams,
        DeepLiftParams,
        OcclusionParams,
        GradCamParams,
        GuidedGradCamParams,
        RegionShapParams,
        RandomParams,
        SobelParams,
        RandomizedModelParams,
        NoneParams,
    )
}


@functools.cache
def _randomized(base: str) -> type[Settings]:
    """randomized_model's own parameters plus those of ``base``."""
    combined: type[Settings] = create_model(
        f"RandomizedModel{ARM_PARAMS[base].__name__}",
        __base__=(ARM_PARAMS[base], RandomizedModelParams),
        __doc__=RandomizedModelParams.__doc__,
    )
    combined.owner = f"randomized_model (base_method {base})"
    return combined


def params_model(method: str, params: Mapping[str, Any]) -> type[Settings]:
    """The schema that validates ``params`` of an arm using ``method``."""
    if method != "randomized_model":
        return ARM_PARAMS[method]
    base = params.get("base_method", "integrated_gradients")
    if isinstance(base, str) and base in EXPLANATION_METHODS:
        return _randomized(base)
    return _RandomizedModelAlone
