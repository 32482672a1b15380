"""The study protocol: what is studied, on which cases, with which arms, read how.

Every field carries a description; ``tests/protocol/test_docs.py`` fails when one
does not, and ``studyhub validate --reference`` prints them as the field reference.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from studyhub.protocol._base import Identifier, Strict

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

#: Attribution methods an arm may name (computed with Captum, see ``studyhub.explain``).
EXPLANATION_METHODS = (
    "integrated_gradients",
    "saliency",
    "smoothgrad",
    "gradient_shap",
    "deeplift",
    "occlusion",
    "gradcam",
    "guided_gradcam",
    "region_shap",
)
#: Control arms, blinded like any method.
CONTROL_METHODS = ("random", "sobel", "randomized_model", "none")

Method = Literal[
    "integrated_gradients",
    "saliency",
    "smoothgrad",
    "gradient_shap",
    "deeplift",
    "occlusion",
    "gradcam",
    "guided_gradcam",
    "region_shap",
    "random",
    "sobel",
    "randomized_model",
    "none",
]


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
    mask_labels: dict[int, Identifier] = Field(
        default_factory=dict,
        description="region mask value -> region name (e.g. 1: crack, 4: stamp); a region "
        "named like a class label is that class's region",
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
    quotas: dict[str, int] | None = Field(
        default=None,
        description="exact count per stratum value (keys join several strata with '|'); "
        "null means proportional allocation",
    )
    confidence_bins: list[float] = Field(
        default_factory=lambda: [0.6, 0.8, 0.95],
        description="cut points of calibrated confidence for the 'confidence_bin' stratum",
    )


class Enrichment(Strict):
    """Over-sampling of the cases most worth reviewing."""

    errors: float = Field(
        default=0.0, ge=0.0, le=1.0, description="target share of misclassified cases"
    )
    low_confidence: float = Field(
        default=0.0, ge=0.0, le=1.0, description="target share of low-confidence cases"
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
        "so near-duplicates are not all drawn",
    )
    enrich: Enrichment = Field(
        default_factory=Enrichment, description="enrichment of errors and low-confidence cases"
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
        description="method parameters (e.g. n_steps, baseline, n_samples, window)",
    )

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


class WindowPreset(Strict):
    """A named display window raters may apply to the plain image of a DICOM case."""

    name: str = Field(
        min_length=1,
        max_length=40,
        description="what raters pick, e.g. 'Soft tissue', 'Lung' or 'Bone'",
    )
    center: float = Field(
        allow_inf_nan=False,
        description="window centre (level) in the image's modality units, e.g. 40 HU for CT",
    )
    width: float = Field(
        gt=0.0,
        allow_inf_nan=False,
        description=(
            "window width in modality units, e.g. 400 HU; widths up to 1 show a threshold "
            "at centre - 0.5 (DICOM's linear VOI function)"
        ),
    )


class Rendering(Strict):
    """One standard look for every arm, so raters compare maps, not styles."""

    colormap: Literal["cividis", "viridis", "magma", "inferno"] = Field(
        default="cividis",
        description="perceptually uniform, colour-blind-safe colormap of the heat map",
    )
    sign: Literal["positive", "absolute"] = Field(
        default="positive",
        description="positive: only evidence for the prediction; absolute: magnitude of both",
    )
    normalize_percentile: float = Field(
        default=99.0,
        gt=50.0,
        le=100.0,
        description="attributions are divided by this percentile and clipped to [0, 1]",
    )
    top_k_percent: float | None = Field(
        default=10.0,
        gt=0.0,
        lt=100.0,
        description="outline the top k% of pixels with a contour; null for no outline",
    )
    canvas_px: int = Field(
        default=448, ge=64, le=4096, description="side of the square rendered image in pixels"
    )
    opacity: float = Field(
        default=0.5, ge=0.0, le=1.0, description="default overlay opacity in the viewer"
    )
    colorbar_legend: str = Field(
        default="Stronger colour = more influence on the model's decision",
        min_length=3,
        description="plain-words legend printed beside the colour bar",
    )
    window_presets: list[WindowPreset] = Field(
        default_factory=list,
        description=(
            "display windows raters may apply to the plain image of DICOM cases (other "
            "images ignore them), e.g. {name: Lung, center: -600, width: 1500}"
        ),
    )

    @field_validator("window_presets")
    @classmethod
    def _unique_presets(cls, presets: list[WindowPreset]) -> list[WindowPreset]:
        names = [p.name for p in presets]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(
                f"window preset names must be unique, {dupes} repeat; give each preset its own name"
            )
        return presets


class ConfidenceBand(Strict):
    """One band of the verbal confidence scale."""

    below: float = Field(
        gt=0.0, le=1.0, description="upper bound (exclusive, except 1.0) of the band"
    )
    words: str = Field(min_length=1, description="what raters read, e.g. 'fairly sure'")


class Cues(Strict):
    """Confidence cues and narrative text shown beside the map."""

    show_prediction: bool = Field(
        default=True, description="show the model's predicted class to raters"
    )
    show_confidence: bool = Field(
        default=True, description="show the calibrated probability on the verbal scale"
    )
    confidence_scale: list[ConfidenceBand] = Field(
        default_factory=lambda: [
            ConfidenceBand(below=0.6, words="unsure"),
            ConfidenceBand(below=0.8, words="fairly sure"),
            ConfidenceBand(below=0.95, words="confident"),
            ConfidenceBand(below=1.0, words="very confident"),
        ],
        min_length=1,
        description="verbal bands of calibrated confidence, ascending; the last ends at 1.0",
    )
    show_uncertainty: bool = Field(
        default=True,
        description="hatch regions where the attribution varies across noise samples",
    )
    uncertainty_samples: int = Field(
        default=8, ge=2, le=256, description="noise samples used for the uncertainty map"
    )
    show_narrative: bool = Field(
        default=False, description="show the structured narrative text to raters"
    )

    @field_validator("confidence_scale")
    @classmethod
    def _ascending(cls, bands: list[ConfidenceBand]) -> list[ConfidenceBand]:
        bounds = [b.below for b in bands]
        if bounds != sorted(set(bounds)) or bounds[-1] != 1.0:
            raise ValueError(
                f"confidence_scale bounds {bounds} must rise strictly and end at 1.0; "
                "order the bands by 'below' and end with below: 1.0"
            )
        return bands


class Blinding(Strict):
    """What raters are kept from knowing."""

    code_length: int = Field(
        default=10, ge=6, le=32, description="length of the opaque stimulus codes"
    )
    shuffle: bool = Field(default=True, description="randomise item order per rater")
    hide_other_raters: Literal[True] = Field(
        default=True, description="raters never see other raters' answers (always true)"
    )


class ReadingDesign(Strict):
    """Who reads what, when."""

    task: Literal["rate_explanation", "reader_diagnosis"] = Field(
        default="rate_explanation",
        description="rate_explanation: judge each map; reader_diagnosis: diagnose each case "
        "with or without an explanation (MRMC)",
    )
    design: Literal["fully_crossed", "balanced_incomplete_block"] = Field(
        default="fully_crossed", description="assignment design of stimuli to raters"
    )
    raters_per_stimulus: int | None = Field(
        default=None,
        ge=2,
        description="balanced_incomplete_block only: raters who read each stimulus",
    )
    sessions: int = Field(default=1, ge=1, le=50, description="reading sessions per rater")
    washout_days: int = Field(
        default=0,
        ge=0,
        le=365,
        description="days before a rater may see the same case under another arm",
    )
    min_gap: int = Field(
        default=3, ge=0, description="minimum items between two items of the same case"
    )
    catch_rate: float = Field(
        default=0.05, ge=0.0, le=0.5, description="share of attention-check items"
    )
    repeat_rate: float = Field(
        default=0.05, ge=0.0, le=0.5, description="share of repeated items (intra-rater)"
    )
    training_items: int = Field(
        default=3, ge=0, le=100, description="practice items before the queue, not analysed"
    )

    @model_validator(mode="after")
    def _bib_needs_k(self) -> ReadingDesign:
        if self.design == "balanced_incomplete_block" and self.raters_per_stimulus is None:
            raise ValueError(
                "reading.raters_per_stimulus is required for a balanced_incomplete_block "
                "design; set raters_per_stimulus (e.g. 3) or use design: fully_crossed"
            )
        return self


class Item(Strict):
    """One question of the rating instrument."""

    id: Identifier = Field(description="the item's name, used as a measure in the plan")
    type: Literal["likert", "yes_no", "single_choice", "diagnosis", "free_text"] = Field(
        description="likert: an ordered scale; diagnosis: a class plus confidence (MRMC)"
    )
    prompt: str = Field(min_length=3, description="the question as raters read it")
    scale_min: int | None = Field(default=None, description="likert only: lowest value")
    scale_max: int | None = Field(default=None, description="likert only: highest value")
    anchors: dict[int, str] = Field(
        default_factory=dict, description="likert only: words for some scale values"
    )
    choices: list[str] = Field(default_factory=list, description="single_choice only: the options")
    required: bool = Field(default=True, description="an answer is needed to submit")

    @model_validator(mode="after")
    def _scale(self) -> Item:
        if self.type == "likert":
            if self.scale_min is None or self.scale_max is None:
                raise ValueError(
                    f"likert item {self.id!r} needs scale_min and scale_max; "
                    "add e.g. scale_min: 1 and scale_max: 5"
                )
            if self.scale_max - self.scale_min < 1:
                raise ValueError(
                    f"likert item {self.id!r} has scale {self.scale_min}..{self.scale_max}; "
                    "scale_max must exceed scale_min"
                )
            outside = [a for a in self.anchors if not self.scale_min <= a <= self.scale_max]
            if outside:
                raise ValueError(
                    f"likert item {self.id!r} has anchors {outside} outside its scale "
                    f"{self.scale_min}..{self.scale_max}; keep anchors within the scale"
                )
        if self.type == "single_choice" and len(self.choices) < 2:
            raise ValueError(
                f"single_choice item {self.id!r} needs at least two choices; list them in choices"
            )
        return self


class Instrument(Strict):
    """The rating form shown with every stimulus."""

    items: list[Item] = Field(min_length=1, description="the questions, in display order")
    cue_marking: bool = Field(
        default=True,
        description="raters may click points and tag them 'correct cue' or 'misleading cue'",
    )
    instructions: str = Field(
        default="Rate how well the highlighted regions explain the model's decision.",
        min_length=3,
        description="instructions shown before the queue",
    )
    consent: str = Field(
        default=(
            "I take part voluntarily. My answers, the time I take per item and the marks I "
            "place are stored under my account name for this study and analysed without my name."
        ),
        min_length=10,
        description=(
            "the statement each rater agrees to before the first item; the agreement is stored "
            "with the statement's SHA-256, and a changed statement is asked for again"
        ),
    )

    @field_validator("items")
    @classmethod
    def _unique_ids(cls, items: list[Item]) -> list[Item]:
        ids = [i.id for i in items]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(
                f"instrument item ids must be unique, {dupes} repeat; give each item its own id"
            )
        return items


class Qualification(Strict):
    """One qualification recorded for each rater."""

    id: Identifier = Field(description="the qualification's name")
    description: str = Field(min_length=3, description="what is asked of the rater")
    type: Literal["years", "yes_no", "text"] = Field(description="how it is recorded")
    minimum: float | None = Field(default=None, description="years only: the least accepted value")


class RaterRequirements(Strict):
    """Who may rate."""

    min_raters: int = Field(default=3, ge=1, description="raters needed before rating opens")
    qualifications: list[Qualification] = Field(
        default_factory=list, description="qualifications recorded when a rater is added"
    )


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
    seed: int = Field(ge=0, lt=2**63, description="the one seed every random step derives from")
    data: DataSource = Field(description="where the cases come from")
    model: ModelSpec = Field(description="the model whose decisions are explained")
    sampling: Sampling = Field(description="how cases are drawn or enrolled")
    arms: list[Arm] = Field(min_length=1, description="explanation methods and controls")
    rendering: Rendering = Field(
        default_factory=Rendering, description="one standard rendering for every arm"
    )
    cues: Cues = Field(default_factory=Cues, description="confidence cues and narratives")
    blinding: Blinding = Field(default_factory=Blinding, description="blinding rules")
    reading: ReadingDesign = Field(default_factory=ReadingDesign, description="the reading design")
    instrument: Instrument = Field(description="the rating instrument")
    raters: RaterRequirements = Field(
        default_factory=RaterRequirements, description="rater numbers and qualifications"
    )

    @field_validator("arms")
    @classmethod
    def _unique_arms(cls, arms: list[Arm]) -> list[Arm]:
        ids = [a.id for a in arms]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"arm ids must be unique, {dupes} repeat; give each arm its own id")
        return arms
