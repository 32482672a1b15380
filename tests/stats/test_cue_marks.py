"""Cue-mark endpoints: the share of marks inside labelled regions, counted by hand."""

from __future__ import annotations

import pandas as pd
import pytest

from studyhub.protocol.plan import AnalysisPlan
from studyhub.stats import evaluate_criteria
from studyhub.stats.cue_marks import inside_region


def _marks() -> pd.DataFrame:
    """3 raters x 3 cases x 2 arms; ig marks land in regions more often than random."""
    rows = []
    inside = {  # (rater, case) -> regions of the ig marks; random gets background mostly
        ("r0", "c0"): ["crack", "crack"],
        ("r0", "c1"): ["crack", "background"],
        ("r0", "c2"): ["pit"],
        ("r1", "c0"): ["crack"],
        ("r1", "c1"): ["background"],
        ("r1", "c2"): ["pit", "pit"],
        ("r2", "c0"): ["crack", "background"],
        ("r2", "c1"): ["crack"],
        ("r2", "c2"): [None],  # a case without a mask: not judged
    }
    for (rater, case), regions in inside.items():
        for region in regions:
            rows.append((rater, case, "ig", "correct", region))
        rows.append((rater, case, "random", "correct", "background"))
        rows.append((rater, case, "random", "misleading", "crack"))
    rows.append(("r0", "c0", "random", "correct", "crack"))
    rows.append(("r1", "c2", "random", "correct", "pit"))
    return pd.DataFrame(rows, columns=["rater", "case", "arm", "tag", "region"])


def _ep(**extra: object) -> dict[str, object]:
    return {
        "id": "marks",
        "primary": True,
        "description": "cue marks inside regions",
        "measure": "cue_marks",
        "statistic": "cue_marks",
        "success_criterion": "marks fall inside the labelled regions",
        **extra,
    }


def _run(ep: dict[str, object]):  # type: ignore[no-untyped-def]
    plan = AnalysisPlan.model_validate({"id": "s", "protocol": "p", "endpoints": [ep]})
    data = pd.DataFrame(
        {"rater": ["r0"], "case": ["c0"], "arm": ["ig"], "measure": ["x"], "value": [1.0]}
    )
    return evaluate_criteria(data, plan=plan, marks=_marks()).results[0]


def test_inside_region_by_name() -> None:
    got = inside_region(pd.Series(["crack", "background", "", None, " Background "]))
    assert got.tolist()[:2] == [1.0, 0.0]
    assert got.isna().tolist() == [False, False, True, True, False]
    assert got.iloc[4] == 0.0


def test_share_of_correct_marks_inside_regions_by_hand() -> None:
    res = _run(_ep(arms=["ig"], hypothesis={"type": "proportion", "threshold": 0.3}))
    # ig correct marks: 13, one on a case without a mask -> 12 judged, 9 inside a region (2+1+1+1+0+2+1+1)
    assert res.estimate == pytest.approx(9 / 12)
    assert res.details["n_marks"] == 13 and res.details["n_without_mask"] == 1
    assert res.details["by_arm"]["ig"] == {"proportion": pytest.approx(9 / 12), "n": 12}
    assert res.ci_low is not None and res.ci_low < res.estimate


def test_arms_compared_and_tags_selected() -> None:
    res = _run(
        _ep(comparison={"arm": "ig", "versus": "random"}, hypothesis={"type": "superiority"})
    )
    # random correct marks: 9 background + 2 inside = 2 / 11
    assert res.estimate == pytest.approx(9 / 12 - 2 / 11)
    assert res.population.startswith("new raters and cases")
    mis = _run(
        _ep(
            arms=["random"],
            hypothesis={"type": "proportion", "threshold": 0.5},
            options={"tag": "misleading"},
        )
    )
    assert mis.verdict == "NOT EVALUABLE" and "do not vary" in mis.reason  # all 9 inside


def test_without_marks_the_endpoint_says_what_to_pass() -> None:
    plan = AnalysisPlan.model_validate(
        {
            "id": "s",
            "protocol": "p",
            "endpoints": [_ep(hypothesis={"type": "proportion", "threshold": 0.5})],
        }
    )
    data = pd.DataFrame(
        {"rater": ["r0"], "case": ["c0"], "arm": ["ig"], "measure": ["x"], "value": [1.0]}
    )
    res = evaluate_criteria(data, plan=plan).results[0]
    assert res.verdict == "NOT EVALUABLE" and "pass marks=" in res.reason
