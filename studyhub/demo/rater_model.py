"""The latent model behind the scripted raters of :mod:`studyhub.demo.raters`.

One :class:`Reader` per rater turns what the harness knows about an item
(:class:`Facts`: arm, case, label, kind, expected answer) into answers, cue
marks, time on task and corrections, from a :class:`LatentModel` and a
:class:`RaterProfile`; :class:`Regions` finds a case's labelled defect and
marker regions. All draws come from generators seeded by the study's seed and
the rater, case and arm ids, so a study rates the same way every time.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from studyhub.protocol.reading import Item
from studyhub.protocol.schema import Protocol
from studyhub.rating.answers import MAX_TIME_ON_TASK_MS
from studyhub.store.models import Rater

__all__ = ["Facts", "LatentModel", "RaterProfile", "Reader", "Regions"]

_DEMO_KEY: Final = re.compile(r"^(train|calibration|test)-(\d+)-(\d+)$")
_COMMENTS: Final = (
    "highlight sits on the edge glare",
    "the bright ring in the corner is highlighted",
    "covers the defect well",
    "too diffuse to judge",
    "map ignores the defect",
)
_REASONS: Final = ("clicked the wrong value", "second look at the image", "misread the scale")


@dataclass(frozen=True)
class LatentModel:
    """Standard deviations of the latent model, in units of a quarter of a Likert range.

    Attributes
    ----------
    rater_sd, case_sd : float
        Rater and case random effects.
    rater_arm_sd, case_arm_sd : float
        Rater x arm and case x arm interactions.
    noise_sd : float
        Fresh noise per reading.
    repeat_sd : float
        How far a repeat reading strays from its first reading.
    """

    rater_sd: float = 0.5
    case_sd: float = 0.6
    rater_arm_sd: float = 0.25
    case_arm_sd: float = 0.25
    noise_sd: float = 0.5
    repeat_sd: float = 0.3


@dataclass(frozen=True)
class RaterProfile:
    """How one scripted rater behaves (probabilities per item).

    Attributes
    ----------
    catch_failure : float
        Probability of answering an attention check against its instruction.
    correction_rate : float
        Probability of correcting a read or repeat answer right after submitting it.
    free_text_rate : float
        Probability of writing an optional free-text comment.
    mark_rate : float
        Probability of placing cue marks (when the protocol collects them).
    misleading_rate : float
        Probability of a ``misleading`` mark on an item with marks.
    skill : float
        Added to every arm's probability of a right single-choice or diagnosis answer.
    median_ms : int
        Median time on task in milliseconds.
    """

    catch_failure: float = 0.05
    correction_rate: float = 0.03
    free_text_rate: float = 0.1
    mark_rate: float = 0.5
    misleading_rate: float = 0.3
    skill: float = 0.0
    median_ms: int = 8000


@dataclass(frozen=True)
class Facts:
    """What the harness knows about an assignment (the app shows none of it)."""

    kind: str
    expected: Any
    repeat_of: int | None
    case_id: int
    case_key: str
    label: str
    arm: str
    arm_id: int


def _normal(seed: int, *key: int) -> float:
    """One standard normal draw fixed by ``(seed, *key)``: the same whatever the order."""
    return float(np.random.default_rng([seed, *key]).standard_normal())


class Reader:
    """One rater's answers: the latent model, the profile and the harness facts."""

    def __init__(
        self,
        rater: Rater,
        protocol: Protocol,
        profile: RaterProfile,
        model: LatentModel,
        *,
        seed: int,
        arm_effects: Mapping[str, float],
        accuracy: Mapping[str, float],
        base_accuracy: float,
        regions: Regions,
    ) -> None:
        self.rater_id = rater.id
        self.protocol = protocol
        self.profile = profile
        self.model = model
        self.seed = seed
        self.arm_effects = arm_effects
        self.accuracy = accuracy
        self.base_accuracy = base_accuracy
        self.regions = regions
        self.rng = np.random.default_rng([seed, 0, rater.id])
        self.latents: dict[int, float] = {}

    def latent(self, assignment_id: int, f: Facts) -> float:
        m, s = self.model, self.seed
        if f.repeat_of is not None and f.repeat_of in self.latents:
            value = self.latents[f.repeat_of] + m.repeat_sd * float(self.rng.standard_normal())
        else:
            value = (
                float(self.arm_effects.get(f.arm, 0.0))
                + m.rater_sd * _normal(s, 1, self.rater_id)
                + m.case_sd * _normal(s, 2, f.case_id)
                + m.rater_arm_sd * _normal(s, 3, self.rater_id, f.arm_id)
                + m.case_arm_sd * _normal(s, 4, f.case_id, f.arm_id)
                + m.noise_sd * float(self.rng.standard_normal())
            )
        self.latents[assignment_id] = value
        return value

    def answers(self, assignment_id: int, f: Facts) -> tuple[dict[str, Any], bool]:
        """The answers to one item and whether it fails its attention check."""
        z = self.latent(assignment_id, f)
        p_right = min(1.0, max(0.0, self.accuracy.get(f.arm, self.base_accuracy)))
        p_right = min(1.0, max(0.0, p_right + self.profile.skill))
        out: dict[str, Any] = {}
        for item in self.protocol.instrument.items:
            value = self._one(item, z, f, p_right)
            if value is not None:
                out[item.id] = value
        failed = False
        if f.kind == "catch":
            wanted = _expected_answers(f.expected)
            failed = bool(wanted) and self.rng.random() < self.profile.catch_failure
            items = {i.id: i for i in self.protocol.instrument.items}
            for item_id, value in wanted.items():
                if item_id in items:
                    out[item_id] = self._wrong(items[item_id], value) if failed else value
        return out, failed

    def _one(self, item: Item, z: float, f: Facts, p_right: float) -> Any:
        if item.type == "likert":
            lo, hi = int(item.scale_min or 0), int(item.scale_max or 0)
            return int(min(hi, max(lo, round((lo + hi) / 2 + z * (hi - lo) / 4))))
        if item.type == "yes_no":
            return "yes" if z > 0 else "no"
        if item.type == "single_choice":
            truth = _choice_of(item, f.label, self.protocol)
            if truth is None:  # no choice names the case's label: follow the latent value
                cdf = 0.5 * (1 + math.erf(z / math.sqrt(2)))
                return item.choices[min(len(item.choices) - 1, int(cdf * len(item.choices)))]
            return truth if self.rng.random() < p_right else self._other(item.choices, truth)
        if item.type == "diagnosis":
            labels = list(self.protocol.data.labels)
            right = self.rng.random() < p_right and f.label in labels
            label = f.label if right else self._other(labels, f.label)
            mean = 75.0 if right else 50.0
            confidence = float(np.clip(round(self.rng.normal(mean, 12.0)), 0, 100))
            return {"label": label, "confidence": confidence}
        if item.required or self.rng.random() < self.profile.free_text_rate:
            return str(_COMMENTS[int(self.rng.integers(len(_COMMENTS)))])
        return None

    def _other(self, options: list[str], than: str) -> str:
        rest = [o for o in options if o != than] or list(options)
        return rest[int(self.rng.integers(len(rest)))]

    def _wrong(self, item: Item, value: Any) -> Any:
        if item.type == "likert":
            scale = range(int(item.scale_min or 0), int(item.scale_max or 0) + 1)
            return int(self._other([str(v) for v in scale], str(value)))
        if item.type == "yes_no":
            return "no" if value in ("yes", True) else "yes"
        if item.type == "single_choice":
            return self._other(item.choices, str(value))
        return value

    def marks(self, f: Facts) -> list[dict[str, Any]]:
        """Cue marks in fractions of the image; none when the protocol collects none."""
        if not self.protocol.instrument.cue_marking or self.rng.random() >= self.profile.mark_rate:
            return []
        defect, marker = self.regions.of(f.case_key)
        out = [self._point(defect, "correct") for _ in range(int(self.rng.integers(1, 3)))]
        if self.rng.random() < self.profile.misleading_rate:
            out.append(self._point(marker, "misleading"))
        return out

    def _point(self, where: NDArray[np.float64] | None, tag: str) -> dict[str, Any]:
        if where is None or len(where) == 0:
            x, y = self.rng.random(2)
        else:
            y, x = where[int(self.rng.integers(len(where)))]
        return {"x": round(float(x), 4), "y": round(float(y), 4), "tag": tag}

    def time_ms(self) -> int:
        ms = math.exp(self.rng.normal(math.log(self.profile.median_ms), 0.4))
        return int(min(MAX_TIME_ON_TASK_MS, max(300, round(ms))))

    def correction(self, answers: dict[str, Any], f: Facts) -> dict[str, Any] | None:
        """A changed answer (or None: no correction this time); never on checks or training."""
        if f.kind in ("catch", "training") or self.rng.random() >= self.profile.correction_rate:
            return None
        fixed = dict(answers)
        for item in self.protocol.instrument.items:
            if item.id in fixed and item.type in ("likert", "yes_no", "single_choice"):
                fixed[item.id] = self._wrong(item, fixed[item.id])
                return fixed
        return None

    def reason(self) -> str:
        return str(_REASONS[int(self.rng.integers(len(_REASONS)))])


def _expected_answers(expected: Any) -> dict[str, Any]:
    """A catch item's instructed answers, as ``validate_answers`` stores them."""
    if not isinstance(expected, Mapping):
        return {}
    wanted = expected.get("answers", {k: v for k, v in expected.items() if k != "prompt"})
    if not isinstance(wanted, Mapping):
        return {}
    out: dict[str, Any] = {}
    for item_id, value in wanted.items():
        first = value[0] if isinstance(value, list) and value else value
        out[str(item_id)] = ("yes" if first else "no") if isinstance(first, bool) else first
    return out


def _choice_of(item: Item, label: str, protocol: Protocol) -> str | None:
    names = {label.lower(), protocol.data.label_terms.get(label, label).lower()}
    return next((c for c in item.choices if c.strip().lower() in names), None)


class Regions:
    """Where a case's labelled defect and marker regions are, in fractions of the image."""

    def __init__(self, protocol: Protocol, masks: Mapping[str, Any] | None) -> None:
        data = protocol.data
        self.demo = data.kind == "demo"
        self.marker = {k for k, v in data.mask_labels.items() if v in data.marker_regions}
        self.masks = masks or {}
        self._cache: dict[str, tuple[NDArray[np.float64] | None, NDArray[np.float64] | None]] = {}

    def _mask(self, case_key: str) -> NDArray[Any] | None:
        if case_key in self.masks:
            return np.asarray(self.masks[case_key])
        match = _DEMO_KEY.match(case_key) if self.demo else None
        if match is None:
            return None
        from studyhub.demo.synth import generate

        split, seed, index = match.group(1), int(match.group(2)), int(match.group(3))
        return generate(1, split=split, seed=seed, start=index)[0].mask

    def of(self, case_key: str) -> tuple[NDArray[np.float64] | None, NDArray[np.float64] | None]:
        """(defect points, marker points) as ``(y, x)`` fractions; None where unknown."""
        if case_key not in self._cache:
            mask = self._mask(case_key)
            if mask is None:
                self._cache[case_key] = (None, None)
            else:
                h, w = mask.shape[:2]

                def points(sel: NDArray[np.bool_]) -> NDArray[np.float64]:
                    rows, cols = np.nonzero(sel)
                    return np.column_stack([(rows + 0.5) / h, (cols + 0.5) / w])

                marker = np.isin(mask, list(self.marker))
                self._cache[case_key] = (points((mask > 0) & ~marker), points(marker))
        return self._cache[case_key]
