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

    colormap: Literal["plasma", "YlOrRd", "cividis", "viridis", "magma", "inferno"] = Field(
        default="plasma",
        description=(
            "colour-blind-safe colormap of the heat map; plasma and YlOrRd keep their colour "
            "(no grey, no black) over the whole scale, so they stay distinct from greyscale "
            "images; cividis, viridis, magma and inferno are kept for existing protocols"
        ),
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
        description=(
            "outline the top k% of the smoothed map (see smoothing_px, min_region_percent) "
            "with a contour; null for no outline"
        ),
    )
    smoothing_px: float = Field(
        default=1.0,
        ge=0.0,
        le=32.0,
        description=(
            "standard deviation, in image pixels, of the Gaussian that smooths the map before "
            "its top-k region is outlined (the heat map itself is not smoothed); 0: pixel-wise"
        ),
    )
    min_region_percent: float = Field(
        default=1.0,
        ge=0.0,
        lt=100.0,
        description=(
            "minimum size of an outlined region, in percent of the image's area: smaller "
            "parts are dropped (the largest always stays) and smaller holes filled; 0 keeps all"
        ),
    )
    interpolation: Literal["nearest", "bilinear", "bicubic"] = Field(
        default="bicubic",
        description=(
            "how the image, the heat map, the outline and the hatching are scaled up to "
            "canvas_px; nearest shows each image pixel as a block"
        ),
    )
    canvas_px: int = Field(
        default=448, ge=64, le=4096, description="side of the square rendered image in pixels"
    )
    opacity: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description=(
            "overlay opacity at the strongest attribution (it rises from 0 at opacity_floor); "
            "the viewer's opacity slider starts here"
        ),
    )
    opacity_floor: float = Field(
        default=0.2,
        ge=0.0,
        lt=1.0,
        description=(
            "normalised attribution at or below which the image is left untouched; above it "
            "the overlay's opacity rises linearly to opacity at 1"
        ),
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
