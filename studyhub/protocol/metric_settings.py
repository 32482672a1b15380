"""Which quantitative metrics ``studyhub explain --metrics`` computes, at what sample counts.

The metrics are not part of a stimulus: raters never see them, so ``studyhub
explain`` leaves them out and ``studyhub explain --metrics`` computes them
afterwards for the analyses that need them. A preset chooses the set (``cheap``,
the default: short deletion/insertion curves and the mask metrics; ``full``: the
set studyhub computed before this section existed); any field written overrides
the preset's value. The uncertainty hatch raters see is a cue (``cues``), not a metric.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field

from studyhub.protocol._base import NOT_NULL, Strict

__all__ = ["METRIC_SETTING", "PRESETS", "MetricPlan", "MetricSettings"]


@dataclass(frozen=True)
class MetricPlan:
    """The resolved settings of the metrics step: the preset with the written overrides.

    A sample count of 0 (or ``False``) switches that metric off.
    """

    curve_steps: int
    infidelity_samples: int
    infidelity_noise_std: float
    sensitivity_samples: int
    sensitivity_radius: float
    randomization: bool
    mask_metrics: bool

    def as_dict(self) -> dict[str, Any]:
        """The settings as a JSON-ready mapping (what provenance records)."""
        return asdict(self)


#: preset -> its settings. ``full`` is the set every stimulus got before the metrics step.
PRESETS: dict[str, MetricPlan] = {
    "cheap": MetricPlan(
        curve_steps=8,
        infidelity_samples=0,
        infidelity_noise_std=0.1,
        sensitivity_samples=0,
        sensitivity_radius=0.02,
        randomization=False,
        mask_metrics=True,
    ),
    "full": MetricPlan(
        curve_steps=32,
        infidelity_samples=8,
        infidelity_noise_std=0.1,
        sensitivity_samples=8,
        sensitivity_radius=0.02,
        randomization=True,
        mask_metrics=True,
    ),
}


#: stored metric -> the setting of this section that computes it.
METRIC_SETTING: dict[str, str] = {
    "deletion_auc": "curve_steps",
    "insertion_auc": "curve_steps",
    "infidelity": "infidelity_samples",
    "max_sensitivity": "sensitivity_samples",
    "randomization_spearman": "randomization",
    "pointing_game": "mask_metrics",
    "relevance_mass": "mask_metrics",
    "top_k_iou": "mask_metrics",
}


class MetricSettings(Strict):
    """Quantitative metrics of each map, computed by ``studyhub explain --metrics``."""

    # A field left out (None) takes the preset's value: only a written null is refused.
    model_config = ConfigDict(**{**Strict.model_config, "validate_default": False})

    preset: Literal["cheap", "full"] = Field(
        default="cheap",
        description="cheap: deletion/insertion curves of 8 steps and the mask metrics "
        "(pointing game, relevance mass, top-k IoU); full: curves of 32 steps, infidelity and "
        "max-sensitivity with 8 samples each, the weight-randomized twin and the mask metrics. "
        "A field written below overrides the preset's value",
    )
    curve_steps: Annotated[int | None, NOT_NULL] = Field(
        default=None,
        ge=0,
        le=1024,
        description="steps of the deletion and insertion curves (deletion_auc, insertion_auc; "
        "the curve has steps + 1 points, one model pass of the batch each); 0 for none; "
        "default: the preset's",
    )
    infidelity_samples: Annotated[int | None, NOT_NULL] = Field(
        default=None,
        ge=0,
        le=1024,
        description="Gaussian perturbations per map for infidelity (Yeh et al. 2019); 0 for "
        "none; default: the preset's",
    )
    infidelity_noise_std: Annotated[float | None, NOT_NULL] = Field(
        default=None,
        gt=0.0,
        le=10.0,
        description="standard deviation of infidelity's perturbations, in the model's input "
        "space (default 0.1)",
    )
    sensitivity_samples: Annotated[int | None, NOT_NULL] = Field(
        default=None,
        ge=0,
        le=1024,
        description="perturbed inputs per map for max-sensitivity, each explained again "
        "(one more explanation per sample); 0 for none; default: the preset's",
    )
    sensitivity_radius: Annotated[float | None, NOT_NULL] = Field(
        default=None,
        gt=0.0,
        le=10.0,
        description="max-sensitivity perturbs each input value uniformly within +/- this "
        "radius, in the model's input space (default 0.02)",
    )
    randomization: Annotated[bool | None, NOT_NULL] = Field(
        default=None,
        description="explain a weight-randomized copy of the model too and store the rank "
        "correlation with the map (randomization_spearman; Adebayo et al. 2018): gradient "
        "methods only, one more explanation per map; default: the preset's",
    )
    mask_metrics: Annotated[bool | None, NOT_NULL] = Field(
        default=None,
        description="pointing game, relevance mass and top-k IoU against the region mask of "
        "the predicted class (cases with such a region only); default: the preset's",
    )

    def plan(self) -> MetricPlan:
        """The preset's settings with every written field in their place."""
        base = PRESETS[self.preset].as_dict()
        written = {k: v for k, v in self.model_dump().items() if k != "preset" and v is not None}
        return MetricPlan(**{**base, **written})
