"""How cases are read: blinding, the reading design, the instrument and rater requirements."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from studyhub.protocol._base import Identifier, Strict, require_unique

__all__ = [
    "Blinding",
    "Instrument",
    "Item",
    "Qualification",
    "RaterRequirements",
    "ReadingDesign",
]


#: The most points of a likert scale (0..100 has 101).
MAX_LIKERT_POINTS = 101


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
        le=1000,
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
        default=3, ge=0, le=1000, description="minimum items between two items of the same case"
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
    scale_min: int | None = Field(
        default=None, ge=-1000, le=1000, description="likert only: lowest value"
    )
    scale_max: int | None = Field(
        default=None,
        ge=-1000,
        le=1000,
        description=f"likert only: highest value, at most {MAX_LIKERT_POINTS - 1} above scale_min",
    )
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
            if self.scale_max - self.scale_min + 1 > MAX_LIKERT_POINTS:
                raise ValueError(
                    f"likert item {self.id!r} has scale {self.scale_min}..{self.scale_max}, "
                    f"{self.scale_max - self.scale_min + 1} points (raters see one button per "
                    f"point); use at most {MAX_LIKERT_POINTS} points, e.g. 0..100"
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
        require_unique([i.id for i in items], what="instrument item ids", each="item")
        return items


class Qualification(Strict):
    """One qualification recorded for each rater."""

    id: Identifier = Field(description="the qualification's name")
    description: str = Field(min_length=3, description="what is asked of the rater")
    type: Literal["years", "yes_no", "text"] = Field(description="how it is recorded")
    minimum: float | None = Field(
        default=None, ge=0.0, le=100.0, description="years only: the least accepted value"
    )


class RaterRequirements(Strict):
    """Who may rate."""

    min_raters: int = Field(
        default=3, ge=1, le=10_000, description="raters needed before rating opens"
    )
    qualifications: list[Qualification] = Field(
        default_factory=list, description="qualifications recorded when a rater is added"
    )
