"""Confidence cues: the model's prediction and calibrated probability in plain words.

:func:`verbal_confidence` maps a calibrated probability onto the protocol's verbal
scale (:class:`~studyhub.protocol.schema.ConfidenceBand`); :class:`ConfidenceCue`
holds what a rater reads beside the map, e.g. ``"Model: crack — confident (87%)"``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from studyhub.errors import InputError
from studyhub.protocol.schema import ConfidenceBand, Cues

__all__ = ["ConfidenceCue", "format_percent", "verbal_confidence"]


def _check_probability(p: float) -> float:
    if isinstance(p, bool) or not isinstance(p, int | float) or not math.isfinite(p):
        raise InputError(f"probability is {p!r}; pass a calibrated probability in [0, 1]")
    if not 0.0 <= p <= 1.0:
        raise InputError(
            f"probability is {p!r}, outside [0, 1]; pass the calibrated probability "
            "(apply softmax or temperature scaling first)"
        )
    return float(p)


def verbal_confidence(p: float, scale: Sequence[ConfidenceBand]) -> str:
    """The words of the first band whose ``below`` exceeds ``p``.

    Bounds are exclusive, except that ``p == 1.0`` lands in the last band
    (whose ``below`` is 1.0).

    Parameters
    ----------
    p : float
        Calibrated probability of the predicted class, in [0, 1].
    scale : sequence of ConfidenceBand
        Bands in ascending order of ``below``, the last ending at 1.0, as in
        :attr:`Cues.confidence_scale <studyhub.protocol.schema.Cues.confidence_scale>`.

    Returns
    -------
    str
        The band's words, e.g. ``"confident"``.

    Raises
    ------
    InputError
        If ``p`` is not in [0, 1], the scale is empty, not ascending, or ends below ``p``.

    Examples
    --------
    >>> scale = Cues().confidence_scale
    >>> verbal_confidence(0.87, scale), verbal_confidence(0.95, scale)
    ('confident', 'very confident')
    """
    p = _check_probability(p)
    if not scale:
        raise InputError("confidence scale is empty; give at least one band ending at 1.0")
    bounds = [band.below for band in scale]
    if any(b >= c for b, c in itertools.pairwise(bounds)):
        raise InputError(
            f"confidence scale bounds {bounds} do not rise strictly; order the bands by 'below'"
        )
    for band in scale:
        if p < band.below:
            return band.words
    if p == 1.0 and bounds[-1] == 1.0:
        return scale[-1].words
    raise InputError(
        f"probability {p!r} is above the last band (below {bounds[-1]!r}); "
        "end the confidence scale with below: 1.0"
    )


def format_percent(p: float) -> str:
    """A probability as a whole percentage, never claiming certainty.

    ``0.873 -> "87%"``; values that would round to 0% or 100% read ``"<1%"`` and
    ``">99%"``, since a calibrated model is never certain.
    """
    p = _check_probability(p)
    if p < 0.005:
        return "<1%"
    if p >= 0.995:
        return ">99%"
    return f"{round(p * 100)}%"


@dataclass(frozen=True)
class ConfidenceCue:
    """What a rater reads about the model's decision beside the map.

    Attributes
    ----------
    label_term : str
        The predicted class in the domain's words (e.g. ``"pitting"``).
    probability : float
        Calibrated probability of that class, in [0, 1].
    words : str
        The verbal confidence band (:func:`verbal_confidence`).
    show_prediction : bool
        Name the predicted class (``Cues.show_prediction``).
    show_confidence : bool
        Give the verbal confidence (``Cues.show_confidence``).
    show_percent : bool
        Add the percentage after the words; the protocol decides.
    """

    label_term: str
    probability: float
    words: str
    show_prediction: bool = True
    show_confidence: bool = True
    show_percent: bool = True

    def __post_init__(self) -> None:
        _check_probability(self.probability)

    @classmethod
    def from_cues(
        cls,
        label: str,
        probability: float,
        cues: Cues,
        *,
        label_terms: Mapping[str, str] | None = None,
        show_percent: bool = True,
    ) -> ConfidenceCue:
        """Build the cue of one prediction under the protocol's :class:`Cues`.

        Parameters
        ----------
        label : str
            Predicted class label (e.g. ``"pit"``).
        probability : float
            Its calibrated probability.
        cues : Cues
            The protocol's cue settings (scale and what is shown).
        label_terms : mapping, optional
            ``DataSource.label_terms``; the label itself is used when it has no term.
        show_percent : bool, default True
            Add the percentage to the words.
        """
        term = (label_terms or {}).get(label, label)
        return cls(
            label_term=term,
            probability=probability,
            words=verbal_confidence(probability, cues.confidence_scale),
            show_prediction=cues.show_prediction,
            show_confidence=cues.show_confidence,
            show_percent=show_percent,
        )

    def confidence_text(self) -> str:
        """The confidence part alone, e.g. ``"confident (87%)"``; empty when hidden."""
        if not self.show_confidence:
            return ""
        if self.show_percent:
            return f"{self.words} ({format_percent(self.probability)})"
        return self.words

    def text(self) -> str:
        """The cue as raters read it.

        ``"Model: crack — confident (87%)"``; ``"Model: crack"`` without the
        confidence; ``"Model confidence: confident (87%)"`` without the
        prediction; ``""`` when both are hidden.
        """
        confidence = self.confidence_text()
        if self.show_prediction and confidence:
            return f"Model: {self.label_term} — {confidence}"
        if self.show_prediction:
            return f"Model: {self.label_term}"
        if confidence:
            return f"Model confidence: {confidence}"
        return ""
