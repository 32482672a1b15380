"""Agreement endpoints of a plan: pooled over the stimuli, intervals that resample cases."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from studyhub.protocol.plan import AnalysisPlan
from studyhub.protocol.plan_options import STATISTIC_OPTIONS
from studyhub.stats import agreement, evaluate_criteria
from tests.stats.helpers import stimuli


def _plan(statistic: str, options: dict[str, Any]) -> AnalysisPlan:
    return AnalysisPlan.model_validate(
        {
            "id": "sap",
            "protocol": "p",
            "alpha": 0.05,
            "endpoints": [
                {  # a plan needs a primary endpoint; agreement is a secondary one here
                    "id": "compare",
                    "description": "b against a",
                    "primary": True,
                    "measure": "usefulness",
                    "statistic": "cluster_bootstrap",
                    "comparison": {"arm": "b", "versus": "a"},
                    "options": {"n_boot": 100},
                    "hypothesis": {"type": "superiority"},
                    "success_criterion": "b beats a one-sided",
                },
                {
                    "id": "agree",
                    "description": "agreement of the raters over both arms",
                    "primary": False,
                    "measure": "usefulness",
                    "statistic": statistic,
                    "arms": ["a", "b"],
                    "hypothesis": {"type": "agreement", "threshold": 0.1},
                    "success_criterion": "lower limit at least 0.1",
                    "options": options,
                },
            ],
        }
    )


def _data(n_raters: int) -> pd.DataFrame:
    data = stimuli(np.random.default_rng(11), n_raters=n_raters, n_cases=25)
    return data.assign(measure="usefulness")


# (statistic, options, raters, the direct call with clusters="case" on the same units, at the
# equal-tailed 90 % level whose lower limit is the plan's one-sided 95 % bound)
CASES = [
    (
        "krippendorff_alpha",
        {"level": "interval"},
        4,
        lambda d: agreement.krippendorff_alpha(
            d,
            units="unit",
            raters="rater",
            ratings="value",
            level="interval",
            clusters="case",
            confidence=0.90,
        ),
    ),
    (
        "icc",
        {"form": "ICC2"},
        4,
        lambda d: agreement.icc(
            d, targets="unit", raters="rater", ratings="value", clusters="case", confidence=0.90
        ).form("ICC2"),
    ),
    (
        "cohen_kappa",
        {"weights": "quadratic"},
        2,
        lambda d: agreement.cohen_kappa(
            d,
            subjects="unit",
            raters="rater",
            ratings="value",
            weights="quadratic",
            clusters="case",
            confidence=0.90,
        ),
    ),
    (
        "fleiss_kappa",
        {},
        4,
        lambda d: agreement.fleiss_kappa(
            d, subjects="unit", raters="rater", ratings="value", clusters="case", confidence=0.90
        ),
    ),
]


@pytest.mark.parametrize(("statistic", "options", "raters", "direct"), CASES)
def test_agreement_endpoint_leaves_out_one_case_at_a_time(
    statistic: str, options: dict[str, Any], raters: int, direct: Any
) -> None:
    data = _data(raters)
    res = evaluate_criteria(data, plan=_plan(statistic, options), seed=1).results[1]
    ref = direct(data)
    assert (res.estimate, res.ci_low) == (ref.estimate, ref.ci_low)
    assert (res.ci_level, res.ci_sides, res.ci_high) == (0.95, 1, math.inf)
    assert res.details["n_cases"] == 25  # the cases, each with both arms
    assert res.details["interval"].startswith("jackknife over cases (each left out with all")
    # nothing random: another seed gives the same interval; where a plan may name
    # n_boot (for plans registered when these intervals were bootstraps) it is
    # recorded as unused
    extra = {"n_boot": 500} if "n_boot" in STATISTIC_OPTIONS[statistic].model_fields else {}
    other = evaluate_criteria(data, plan=_plan(statistic, {**options, **extra}), seed=2)
    assert other.results[1].ci_low == res.ci_low
    if extra:
        assert other.results[1].details["n_boot"] == (
            "500 (not used: the jackknife over cases draws no resamples)"
        )


def test_intra_rater_endpoint_leaves_out_one_case_at_a_time() -> None:
    data = _data(3)
    repeats = data[data["case"] < "c010"].assign(
        value=lambda d: np.clip(d["value"] + np.where(np.arange(len(d)) % 4 == 0, 1, 0), 1, 5)
    )
    both = pd.concat([data.assign(second=False), repeats.assign(second=True)], ignore_index=True)
    plan = _plan("intra_rater", {"method": "kappa"})
    res = evaluate_criteria(both, plan=plan, repeat="second").results[1]
    ref = agreement.intra_rater_agreement(
        both,
        items="unit",
        raters="rater",
        ratings="value",
        repeat="second",
        method="kappa",
        clusters="case",
        confidence=0.90,
    )
    assert (res.estimate, res.ci_low) == (ref.estimate, ref.ci_low)
    assert (res.ci_level, res.ci_sides, res.ci_high) == (0.95, 1, math.inf)
    assert ref.n_clusters == 10
