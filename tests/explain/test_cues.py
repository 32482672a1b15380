"""Tests of studyhub.explain.cues: verbal confidence bands and the cue text."""

from __future__ import annotations

import math

import pytest

from studyhub.errors import InputError
from studyhub.explain.cues import ConfidenceCue, format_percent, verbal_confidence
from studyhub.protocol.schema import ConfidenceBand, Cues

SCALE = Cues().confidence_scale  # unsure < .6 <= fairly sure < .8 <= confident < .95 <= very


@pytest.mark.parametrize(
    ("p", "words"),
    [
        (0.0, "unsure"),
        (0.5999, "unsure"),
        (0.6, "fairly sure"),  # bounds are exclusive: 0.6 is not below 0.6
        (0.79, "fairly sure"),
        (0.8, "confident"),
        (0.87, "confident"),
        (0.95, "very confident"),
        (0.999, "very confident"),
        (1.0, "very confident"),  # p == 1.0 lands in the last band
    ],
)
def test_verbal_confidence_bands(p: float, words: str) -> None:
    assert verbal_confidence(p, SCALE) == words


def test_single_band_scale_takes_everything() -> None:
    scale = [ConfidenceBand(below=1.0, words="any")]
    assert verbal_confidence(0.0, scale) == "any"
    assert verbal_confidence(1.0, scale) == "any"


@pytest.mark.parametrize("p", [-0.01, 1.01, math.nan, math.inf])
def test_probability_outside_unit_interval_is_refused(p: float) -> None:
    with pytest.raises(InputError, match=r"probability is .*\[0, 1\]"):
        verbal_confidence(p, SCALE)


def test_bad_scales_are_refused() -> None:
    with pytest.raises(InputError, match="confidence scale is empty"):
        verbal_confidence(0.5, [])
    descending = [ConfidenceBand(below=0.9, words="a"), ConfidenceBand(below=0.5, words="b")]
    with pytest.raises(InputError, match="do not rise strictly"):
        verbal_confidence(0.5, descending)
    short = [ConfidenceBand(below=0.5, words="a"), ConfidenceBand(below=0.9, words="b")]
    with pytest.raises(InputError, match=r"above the last band .*end the confidence scale"):
        verbal_confidence(0.95, short)


@pytest.mark.parametrize(
    ("p", "text"), [(0.873, "87%"), (0.5, "50%"), (0.004, "<1%"), (0.995, ">99%"), (1.0, ">99%")]
)
def test_format_percent(p: float, text: str) -> None:
    assert format_percent(p) == text


def test_cue_text_variants() -> None:
    cue = ConfidenceCue(label_term="crack", probability=0.87, words="confident")
    assert cue.text() == "Model: crack — confident (87%)"
    assert ConfidenceCue("crack", 0.87, "confident", show_percent=False).text() == (
        "Model: crack — confident"
    )
    assert ConfidenceCue("crack", 0.87, "confident", show_confidence=False).text() == (
        "Model: crack"
    )
    assert ConfidenceCue("crack", 0.87, "confident", show_prediction=False).text() == (
        "Model confidence: confident (87%)"
    )
    hidden = ConfidenceCue("crack", 0.87, "confident", show_prediction=False, show_confidence=False)
    assert hidden.text() == ""


def test_cue_from_protocol_uses_label_terms_and_flags() -> None:
    cues = Cues(show_confidence=True, show_prediction=True)
    cue = ConfidenceCue.from_cues("pit", 0.62, cues, label_terms={"pit": "pitting"})
    assert (cue.label_term, cue.words) == ("pitting", "fairly sure")
    assert cue.text() == "Model: pitting — fairly sure (62%)"
    hidden = ConfidenceCue.from_cues("pit", 0.62, Cues(show_prediction=False), show_percent=False)
    assert hidden.text() == "Model confidence: fairly sure"
    assert ConfidenceCue.from_cues("crack", 0.9, cues).label_term == "crack"


def test_cue_refuses_bad_probability() -> None:
    with pytest.raises(InputError, match=r"probability is 1\.2"):
        ConfidenceCue("crack", 1.2, "confident")
