"""An mrmc endpoint on diagnosis answers (class + confidence) equals mrmc on the ratings."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from studyhub.protocol.plan import AnalysisPlan
from studyhub.stats import evaluate_criteria, mrmc
from studyhub.stats._mrmc_endpoint import positivity_ratings
from tests.paths import DATA

CLASSES = ["normal", "lesion"]


def _diagnoses() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Van Dyke ratings 1..5 as diagnoses: rating >= 3 names the lesion with confidence 20 x
    rating, below names normal with confidence 100 - 20 x rating (positivity = 20 x rating)."""
    vd = pd.read_csv(DATA / "reference" / "vandyke_mrmc_roc" / "ratings_long.csv")
    lesion = vd["rating"] >= 3
    tidy = pd.DataFrame(
        {
            "rater": vd["reader"].astype(str),
            "case": vd["case"].astype(str),
            "arm": vd["modality"].map({1: "spin_echo", 2: "cine"}),
            "measure": "diagnosis",
            "label": lesion.map({True: "lesion", False: "normal"}),
            "value": (20 * vd["rating"]).where(lesion, 100 - 20 * vd["rating"]).astype(float),
            "truth": vd["truth"].map({1: "lesion", 0: "normal"}),
        }
    )
    return vd, tidy


def _plan(**options: object) -> AnalysisPlan:
    ep = {
        "id": "auc",
        "primary": True,
        "description": "reader AUC",
        "measure": "auc",
        "statistic": "mrmc",
        "comparison": {"arm": "cine", "versus": "spin_echo"},
        "hypothesis": {"type": "superiority"},
        "success_criterion": "cine-MRI AUC exceeds spin-echo AUC",
        "options": options,
    }
    return AnalysisPlan.model_validate({"id": "s", "protocol": "p", "endpoints": [ep]})


def test_positivity_is_confidence_or_its_complement() -> None:
    rows = pd.DataFrame(
        {"label": ["lesion", "normal"], "value": [70.0, 70.0], "truth": ["lesion", "normal"]}
    )
    out = positivity_ratings(rows, label="label", value="value", truth="truth", positive=["lesion"])
    assert out["_rating"].tolist() == [70.0, 30.0]
    assert out["_truth"].tolist() == [1, 0]


@pytest.mark.parametrize("how", ["classes", "positive"])
def test_endpoint_from_tidy_rows_equals_mrmc_on_the_csv(how: str, tmp_path: Path) -> None:
    _, tidy = _diagnoses()
    if how == "classes":  # default: every class but the first is positive
        res = evaluate_criteria(
            tidy, plan=_plan(), truth="truth", label="label", classes=CLASSES
        ).results[0]
    else:
        res = evaluate_criteria(
            tidy, plan=_plan(positive="lesion"), truth="truth", label="label"
        ).results[0]
    # the equivalent CSV: positivity ratings with 0/1 truth, as `studyhub stats mrmc` reads it
    csv = tmp_path / "ratings.csv"
    positivity_ratings(
        tidy, label="label", value="value", truth="truth", positive=["lesion"]
    ).to_csv(csv, index=False)
    direct = mrmc(
        pd.read_csv(csv),
        reader="rater",
        modality="arm",
        case="case",
        truth="_truth",
        rating="_rating",
    )
    diff = direct.rrrc.differences.iloc[0]
    sign = 1.0 if diff["modality_a"] == "cine" else -1.0
    assert res.estimate == pytest.approx(sign * diff["estimate"], abs=1e-12)
    assert res.details["ddf"] == pytest.approx(diff["df"])
    # and the Van Dyke reference (OR-DBM MRMC 2.51): cine minus spin echo 0.04380032
    assert res.estimate == pytest.approx(0.04380032, abs=5e-9)
    assert res.p_value == pytest.approx(0.0517 / 2, abs=1e-4)
    assert res.details["positive"] == ["lesion"]


def test_class_truth_without_classes_or_positive_says_what_to_pass() -> None:
    _, tidy = _diagnoses()
    res = evaluate_criteria(tidy, plan=_plan(), truth="truth", label="label").results[0]
    assert res.verdict == "NOT EVALUABLE"
    assert "classes=protocol.data.labels" in res.reason and "positive: CLASS" in res.reason
