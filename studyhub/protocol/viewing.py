"""What raters are shown besides the image: the rendering of every arm and the model's cues."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from studyhub.protocol._base import Strict, require_unique

__all__ = ["ConfidenceBand", "Cues", "Rendering", "WindowPreset"]


class WindowPreset(Strict):
    """A named display window raters may apply to the plain image of a DICOM case."""

    name: str = Field(
        min_length=1,
        max_length=40,
        description="what raters pick, e.g. 'Soft tissue', 'Lung' or 'Bone'",
    )
    center: float = Field(
        description="window centre (level) in the image's modality units, e.g. 40 HU for CT",
    )
    width: float = Field(
        gt=0.0,
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
        require_unique(names, what="window preset names", each="preset", key="name")
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
