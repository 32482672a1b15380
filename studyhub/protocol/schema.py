"""The study protocol: what is studied, on which cases, with which arms, read how.

Every field carries a description; ``tests/protocol/test_docs.py`` fails when one
does not, and ``studyhub validate --reference`` prints them as the field reference.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, ValidationInfo, field_validator, model_validator

from studyhub.protocol._base import SEED_LIMIT, Identifier, Strict, require_unique
from studyhub.protocol.arm_params import (
    CONTROL_METHODS,
    EXPLANATION_METHODS,
    ControlMethod,
    ExplanationMethod,
    params_model,
)
from studyhub.protocol.metric_settings import MetricSettings
from studyhub.protocol.reading import (
    Blinding,
    Instrument,
    Item,
    Qualification,
    RaterRequirements,
    ReadingDesign,
)
from studyhub.protocol.viewing import ConfidenceBand, Cues, Rendering, WindowPreset

__all__ = [
    "CONTROL_METHODS",
    "EXPLANATION_METHODS",
    "Arm",
    "Blinding",
    "ConfidenceBand",
    "Cues",
    "DataSource",
    "Eligibility",
    "Enrichment",
    "Instrument",
    "Item",
    "MetricSettings",
    "ModelSpec",
    "Protocol",
    "Qualification",
    "RaterRequirements",
    "ReadingDesign",
    "Rendering",
    "Sampling",
    "Stratification",
    "WindowPreset",
]

Method = Literal[ExplanationMethod, ControlMethod]


_METHODS = EXPLANATION_METHODS + CONTROL_METHODS


class DataSource(Strict):
    """Where the cases come from."""

    kind: Literal["demo", "csv", "folders", "dicom"] = Field(
        description="demo: the built-in synthetic inspection domain; csv: a manifest file; "
        "folders: one sub-folder per class; dicom: a folder of DICOM files"
    )
    path: str | None = Field(
        default=None,
        description="the manifest file or the folder, relative to the protocol file "
        "(not used by kind demo)",
    )
    labels: list[Identifier] = Field(
        min_length=2,
        description="the class labels, in the model's output order",
    )
    label_terms: dict[Identifier, str] = Field(
        default_factory=dict,
        description="plain domain words for labels and mask regions, used in narratives "
        "(e.g. pit: 'pitting corrosion')",
    )
    mask_labels: dict[Annotated[int, Field(ge=0, le=65535)], Identifier] = Field(
        default_factory=dict,
        description="region mask value (0 to 65535, as in 8- or 16-bit masks) -> region name "
        "(e.g. 1: crack, 4: stamp); a region named like a class label is that class's region",
    )
    marker_regions: list[Identifier] = Field(
        default_factory=list,
        description="regions that are markers, not findings (stamps, rulers, pen marks): "
        "attribution on them is flagged as a likely confounder",
    )
    image_column: str = Field(default="image_path", description="manifest column of image paths")
    label_column: str = Field(default="label", description="manifest column of class labels")
    mask_column: str | None = Field(
        default="mask_path",
        description="manifest column of region-mask paths, or null when there are no masks",
    )
    split_column: str | None = Field(
        default="split",
        description="manifest column naming each row's split (train/calibration/test), or null",
    )
    allow_outside_root: bool = Field(
        default=False,
        description="let image and mask paths in the manifest point outside the data root (the "
        "manifest's folder, or the folder of kind folders/dicom), e.g. ../elsewhere/x.png; off, "
        "such a path is refused so that a manifest cannot reach files it should not",
    )
    demo_cases_per_split: int = Field(
        default=400,
        ge=10,
        le=100_000,
        description="kind demo only: how many synthetic cases each split holds",
    )

    @model_validator(mode="after")
    def _markers_are_regions(self) -> DataSource:
        unknown = [m for m in self.marker_regions if m not in self.mask_labels.values()]
        if unknown:
            raise ValueError(
                f"marker_regions {unknown} are not named in mask_labels "
                f"{sorted(self.mask_labels.values())}; name them in mask_labels first"
            )
        return self

    @model_validator(mode="after")
    def _path_needed(self) -> DataSource:
        if self.kind != "demo" and not self.path:
            raise ValueError(
                f"data.path is required when data.kind is {self.kind!r}; "
                "give the manifest file or folder relative to the protocol"
            )
        return self


class ModelSpec(Strict):
    """The model whose decisions are explained."""

    entry_point: str = Field(
        pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
        description="'package.module:function' returning (torch.nn.Module, preprocess)",
    )
    weights: str | None = Field(
        default=None,
        description="weights file relative to the protocol, hashed into the model version; "
        "null when the entry point loads its own shipped weights",
    )
    calibration_split: str | None = Field(
        default="calibration",
        description="data split used to fit temperature scaling of the probabilities; "
        "null to skip calibration",
    )
    target_layer: str | None = Field(
        default=None,
        description="name of the convolutional layer Grad-CAM arms use (e.g. 'features.conv3')",
    )


class Eligibility(Strict):
    """Which cases may be enrolled."""

    labels: list[Identifier] | None = Field(
        default=None, description="labels eligible for enrollment; null means all labels"
    )
    require_mask: bool = Field(default=False, description="exclude cases without a region mask")
    metadata: dict[str, list[str]] = Field(
        default_factory=dict,
        description="metadata column -> allowed values (e.g. lighting: [bright, dim])",
    )


class Stratification(Strict):
    """Stratified quotas of the sample."""

    by: list[str] = Field(
        min_length=1,
        description="strata: 'label', 'correctness', 'confidence_bin', or a metadata column",
    )
    quotas: dict[str, Annotated[int, Field(ge=0, le=1_000_000)]] | None = Field(
        default=None,
        description="exact count (0 or more) per stratum value (keys join several strata with "
        "'|', one part per entry of by); they add up to sampling.n_cases; null means "
        "proportional allocation",
    )
    confidence_bins: list[Annotated[float, Field(gt=0.0, lt=1.0)]] = Field(
        default_factory=lambda: [0.6, 0.8, 0.95],
        min_length=1,
        description="cut points of calibrated confidence for the 'confidence_bin' stratum: "
        "rising, between 0 and 1, different in their first two decimals (which name the bins)",
    )

    @field_validator("confidence_bins")
    @classmethod
    def _rising_bins(cls, cuts: list[float]) -> list[float]:
        names = [f"{c:.2f}" for c in cuts]
        if cuts != sorted(cuts) or len(set(names)) != len(names):
            raise ValueError(
                f"confidence_bins {cuts} must rise and differ in their first two decimals "
                "(bins are named 0.60-0.80 ...); list distinct cut points in rising order"
            )
        return cuts


class Enrichment(Strict):
    """Exact shares of misclassified and low-confidence cases, kept with the stratum quotas."""

    errors: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="exact share of misclassified cases in the sample: errors x n_cases of them, "
        "rounded to the nearest case (half up), one more or fewer only where the stratum quotas "
        "allow no other count together with low_confidence; 0 sets no target (misclassified "
        "cases are drawn like any other). sample and the pre-flight refuse a share that the "
        "eligible pool and the quotas cannot give, naming the strata, the counts and the share "
        "that can be met",
    )
    low_confidence: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="exact share of low-confidence cases in the sample, as for errors (a case "
        "can count for both); 0 sets no target",
    )
    low_confidence_below: float = Field(
        default=0.7,
        gt=0.0,
        lt=1.0,
        description="calibrated confidence under which a case counts as low-confidence",
    )


class Sampling(Strict):
    """How cases are drawn (retrospective) or enrolled (prospective)."""

    n_cases: int = Field(ge=1, le=1_000_000, description="number of cases to enroll")
    pool_split: str | None = Field(
        default="test",
        description="split the cases are drawn from; null means every row of the data source",
    )
    eligibility: Eligibility = Field(
        default_factory=Eligibility, description="which cases may be enrolled"
    )
    stratify: Stratification | None = Field(
        default=None, description="stratified quotas, or null for none"
    )
    diversity: Literal["none", "k_center"] = Field(
        default="k_center",
        description="k_center: k-center greedy on the model's penultimate-layer embeddings, "
        "choosing among the cases that keep the quotas and enrichment counts, so "
        "near-duplicates are not all drawn; none: a seeded random choice among them",
    )
    enrich: Enrichment = Field(
        default_factory=Enrichment,
        description="exact shares of misclassified and low-confidence cases in the sample",
    )


class Arm(Strict):
    """One way of showing a case: an explanation method or a control."""

    id: Identifier = Field(description="the arm's name in the plan (never shown to raters)")
    kind: Literal["method", "control"] = Field(
        description="method: a real explanation; control: random, sobel, randomized_model, none"
    )
    method: Method = Field(description="the attribution method or control that makes the map")
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="method parameters (e.g. n_steps, baseline, n_samples, window), checked "
        "against the method's own list below (Arm parameters by method) and hashed as written",
    )

    @classmethod
    def schema_of(cls, name: str, data: Mapping[str, Any]) -> type[BaseModel] | None:
        method, params = data.get("method"), data.get("params")
        if name != "params" or not isinstance(method, str) or method not in _METHODS:
            return None
        return params_model(method, params if isinstance(params, Mapping) else {})

    @field_validator("params")
    @classmethod
    def _params_of_method(cls, params: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        method = info.data.get("method")
        if method is not None:  # else the method's own error is reported
            params_model(method, params).model_validate(params)
        return params  # hashed as written: no defaults filled in

    @model_validator(mode="after")
    def _kind_matches_method(self) -> Arm:
        is_control = self.method in CONTROL_METHODS
        if is_control and self.kind != "control":
            raise ValueError(
                f"arm {self.id!r} uses {self.method!r}, which is a control; set kind: control"
            )
        if not is_control and self.kind != "method":
            raise ValueError(
                f"arm {self.id!r} uses {self.method!r}, which is an explanation method; "
                "set kind: method"
            )
        return self


class Protocol(Strict):
    """A study protocol, registered and locked together with its analysis plan."""

    id: Identifier = Field(description="the study's short name; also its id in the store")
    title: str = Field(min_length=3, description="the study's full title")
    objective: str = Field(min_length=10, description="the question the study answers")
    design: Literal["prospective", "retrospective"] = Field(
        description="prospective: cases enrolled after registration; "
        "retrospective: drawn from an existing pool by the sampling plan"
    )
    analysis_plan: str = Field(
        description="the statistical analysis plan file, relative to this protocol"
    )
    seed: int = Field(
        ge=0, lt=SEED_LIMIT, description="the one seed every random step derives from"
    )
    data: DataSource = Field(description="where the cases come from")
    model: ModelSpec = Field(description="the model whose decisions are explained")
    sampling: Sampling = Field(description="how cases are drawn or enrolled")
    arms: list[Arm] = Field(min_length=1, description="explanation methods and controls")
    rendering: Rendering = Field(
        default_factory=Rendering, description="one standard rendering for every arm"
    )
    cues: Cues = Field(default_factory=Cues, description="confidence cues and narratives")
    metrics: MetricSettings = Field(
        default_factory=MetricSettings,
        description="quantitative metrics of the maps, computed by studyhub explain --metrics "
        "after the stimuli",
    )
    blinding: Blinding = Field(default_factory=Blinding, description="blinding rules")
    reading: ReadingDesign = Field(default_factory=ReadingDesign, description="the reading design")
    instrument: Instrument = Field(description="the rating instrument")
    raters: RaterRequirements = Field(
        default_factory=RaterRequirements, description="rater numbers and qualifications"
    )

    @field_validator("arms")
    @classmethod
    def _unique_arms(cls, arms: list[Arm]) -> list[Arm]:
        require_unique([a.id for a in arms], what="arm ids", each="arm")
        return arms
