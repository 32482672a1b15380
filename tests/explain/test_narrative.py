"""Tests of studyhub.explain.narrative: shares by hand, confounder flags, domain words."""

from __future__ import annotations

import numpy as np
import pytest

from studyhub.demo.synth import MASK_LABELS, STAMP_LABEL, generate
from studyhub.errors import InputError
from studyhub.explain.cues import ConfidenceCue
from studyhub.explain.narrative import ELSEWHERE, border_band, narrate, rounded_percents
from studyhub.protocol.schema import Cues

# Demo protocol's label_terms (protocols/inspection_demo.yaml): pit -> pitting.
TERMS = {"pit": "pitting", "crack": "crack"}


def scene() -> tuple[np.ndarray, np.ndarray]:
    """A 10×10 mask: a crack block in the middle, a stamp mark in the top-left corner."""
    mask = np.zeros((10, 10), dtype=np.uint8)
    mask[4:6, 4:6] = 1  # crack, 4 pixels
    mask[0:2, 0:2] = STAMP_LABEL  # stamp mark, 4 pixels
    return mask, np.zeros((10, 10))


def test_region_shares_by_hand() -> None:
    mask, a = scene()
    a[4:6, 4:6] = 0.16  # 4 × 0.16 = 0.64 on the crack
    a[0:2, 0:2] = 0.055  # 4 × 0.055 = 0.22 on the stamp mark
    a[5, 8] = 0.14  # 0.14 elsewhere
    a[7, 7] = -5.0  # negative evidence never counts
    story = narrate(a, mask, region_terms=MASK_LABELS, marker_labels=[STAMP_LABEL])
    assert list(story.region_shares) == ["crack", "stamp mark", ELSEWHERE]
    assert story.region_shares["crack"] == pytest.approx(0.64)
    assert story.region_shares["stamp mark"] == pytest.approx(0.22)
    assert story.region_shares[ELSEWHERE] == pytest.approx(0.14)
    assert story.positive_mass == pytest.approx(1.0)
    assert (
        "64% of the positive attribution lies on the crack, 22% on the stamp mark, "
        "14% elsewhere." in story.text
    )
    # 22% on the stamp mark is above the 5% marker threshold and over 5 times its
    # 4% share of the area (4 of 100 pixels).
    assert story.flags == ["marker"]
    assert story.marker_share == pytest.approx(0.22)
    assert (
        "22% of the positive attribution lies on the stamp mark, which covers 4% of the "
        "image: a marker" in story.text
    )
    # Border band of a 10-pixel side at 8%: round(0.8) = 1 pixel. It holds three
    # stamp pixels (0,0), (0,1), (1,0): 3 × 0.055 = 0.165, under the 40% threshold.
    assert story.border_share == pytest.approx(0.165)


def test_text_uses_label_terms_and_the_cue() -> None:
    mask = np.zeros((8, 8), dtype=np.uint8)
    mask[3:5, 3:5] = 3  # pit
    a = np.zeros((8, 8))
    a[3:5, 3:5] = 1.0
    cue = ConfidenceCue.from_cues("pit", 0.87, Cues(), label_terms={"pit": "pitting"})
    story = narrate(a, mask, region_terms=MASK_LABELS, label_terms=TERMS, cue=cue)
    assert story.sentences[0] == "Model: pitting — confident (87%)."
    assert story.sentences[1] == (
        "100% of the positive attribution lies on the pitting, 0% elsewhere."
    )
    assert story.region_shares == {"pitting": 1.0, ELSEWHERE: 0.0}
    assert story.flags == []


def test_stamp_flag_raises_on_a_stamp_map_and_stays_silent_otherwise() -> None:
    mask, a = scene()
    a[0:2, 0:2] = 1.0  # everything on the stamp mark
    on_stamp = narrate(a, mask, region_terms=MASK_LABELS, marker_labels=[STAMP_LABEL])
    assert "marker" in on_stamp.flags
    assert on_stamp.marker_share == pytest.approx(1.0)
    # Without marker_labels the stamp mark is an ordinary region: no marker flag.
    plain = narrate(a, mask, region_terms=MASK_LABELS)
    assert "marker" not in plain.flags
    # Attribution on the crack only: silent.
    mask, a = scene()
    a[4:6, 4:6] = 1.0
    clean = narrate(a, mask, region_terms=MASK_LABELS, marker_labels=[STAMP_LABEL])
    assert clean.flags == []
    assert "Caution" not in clean.text


def test_marker_flag_needs_evidence_out_of_proportion_to_the_markers_area() -> None:
    mask = np.zeros((10, 10), dtype=np.uint8)
    mask[:, :5] = STAMP_LABEL  # a large marker: half the image
    a = np.ones((10, 10))  # evidence spread evenly: the marker holds its area's worth
    even = narrate(a, mask, region_terms=MASK_LABELS, marker_labels=[STAMP_LABEL])
    assert even.marker_share == pytest.approx(0.5)
    assert "marker" not in even.flags
    small = np.zeros((10, 10), dtype=np.uint8)
    small[0, 0] = STAMP_LABEL  # 1% of the area draws 10% of the evidence
    b = np.ones((10, 10))
    b[0, 0] = 11.0
    spiky = narrate(b, small, region_terms=MASK_LABELS, marker_labels=[STAMP_LABEL])
    assert spiky.marker_share == pytest.approx(0.1)
    assert "marker" in spiky.flags
    assert "which covers 1% of the image" in spiky.text


def test_border_flag_raises_on_a_frame_and_stays_silent_on_a_uniform_map() -> None:
    # 25×25, 8% -> round(2.0) = 2-pixel band: 25² - 21² = 184 pixels (29.4% of 625).
    band = border_band((25, 25), 0.08)
    assert int(band.sum()) == 625 - 21 * 21
    uniform = narrate(np.ones((25, 25)))
    assert uniform.border_share == pytest.approx(184 / 625)
    assert uniform.flags == []
    frame = np.where(band, 1.0, 0.0)
    frame[12, 12] = 10.0  # 184 on the border, 10 inside: 184 / 194 ≈ 0.948
    story = narrate(frame)
    assert story.flags == ["border"]
    assert story.border_share == pytest.approx(184 / 194)
    assert "95% of the positive attribution lies on the image border" in story.text
    assert story.region_shares == {}


def test_outside_flag_needs_a_finding_region() -> None:
    mask, a = scene()
    a[7:9, 3:7] = 1.0  # 8 pixels on plain surface
    a[4, 4] = 1.0  # 1 pixel on the crack -> 8/9 outside
    story = narrate(a, mask, region_terms=MASK_LABELS, marker_labels=[STAMP_LABEL])
    assert story.flags == ["outside"]
    assert story.outside_share == pytest.approx(8 / 9)
    assert "89% of the positive attribution lies outside every labelled region" in story.text
    # Only a marker region (a defect-free case with a stamp): no "outside" flag.
    only_stamp = np.where(mask == STAMP_LABEL, STAMP_LABEL, 0).astype(np.uint8)
    quiet = narrate(a, only_stamp, region_terms=MASK_LABELS, marker_labels=[STAMP_LABEL])
    assert quiet.flags == []


def test_uncertainty_statement_by_hand() -> None:
    a = np.arange(100, dtype=float).reshape(10, 10)  # top 10% = the last row (90..99)
    uncertainty = np.zeros((10, 10))
    uncertainty[9, :3] = 0.9  # 3 of the 10 highlighted pixels are uncertain
    story = narrate(a, uncertainty=uncertainty, uncertainty_threshold=0.5)
    assert story.uncertain_share == pytest.approx(0.3)
    assert "The highlighted region is uncertain in 30% of its area." in story.text


def test_no_positive_mass() -> None:
    story = narrate(-np.ones((4, 4)))
    assert story.text == "The map shows no positive attribution."
    assert story.region_shares == {} and story.flags == []


def test_rounded_percents_sum_to_100() -> None:
    assert rounded_percents([0.644, 0.221, 0.135]) == [64, 22, 14]
    assert rounded_percents([1 / 3, 1 / 3, 1 / 3]) == [34, 33, 33]
    assert sum(rounded_percents([0.125, 0.125, 0.75])) == 100


def test_demo_case_narrative_names_demo_terms() -> None:
    case = next(c for c in generate(16, split="test", seed=0) if c.metadata["stamp"])
    a = (case.mask > 0).astype(float)
    story = narrate(
        a, case.mask, region_terms=MASK_LABELS, label_terms=TERMS, marker_labels=[STAMP_LABEL]
    )
    assert "stamp mark" in story.region_shares
    assert sum(story.region_shares.values()) == pytest.approx(1.0)


def test_bad_input_names_the_problem() -> None:
    mask, a = scene()
    with pytest.raises(InputError, match=r"mask has shape \(3, 3\)"):
        narrate(a, np.zeros((3, 3), dtype=np.uint8), region_terms=MASK_LABELS)
    with pytest.raises(InputError, match=r"mask value\(s\) \[7\] have no entry in region_terms"):
        narrate(a, np.full((10, 10), 7, dtype=np.uint8), region_terms=MASK_LABELS)
    with pytest.raises(InputError, match="mask has dtype float64"):
        narrate(a, mask.astype(float), region_terms=MASK_LABELS)
    bad = a.copy()
    bad[1, 1] = np.nan
    with pytest.raises(InputError, match="attribution holds 1 NaN"):
        narrate(bad, mask, region_terms=MASK_LABELS)
    with pytest.raises(InputError, match=r"border_fraction is 0\.6"):
        narrate(np.ones((4, 4)), border_fraction=0.6)
