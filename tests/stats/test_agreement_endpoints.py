"""Agreement endpoints of a plan: pooled over the stimuli, intervals that resample cases."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from studyhub.protocol.plan import AnalysisPlan
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


# (statistic, options, raters, direct call with clusters="case" on the same units)
CASES = [
    (
        "krippendorff_alpha",
        {"level": "interval", "n_boot": 300},
        4,
        lambda d, seed: agreement.krippendorff_alpha(
            d,
            units="unit",
            raters="rater",
            ratings="value",
            level="interval",
            n_boot=300,
            seed=seed,
            clusters="case",
        ),
    ),
    (
        "icc",
        {"form": "ICC2", "n_boot": 300},
        4,
        lambda d, seed: agreement.icc(
            d,
            targets="unit",
            raters="rater",
            ratings="value",
            n_boot=300,
            seed=seed,
            clusters="case",
        ).form("ICC2"),
    ),
    (
        "cohen_kappa",
        {"weights": "quadratic", "n_boot": 300},
        2,
        lambda d, seed: agreement.cohen_kappa(
            d,
            subjects="unit",
            raters="rater",
            ratings="value",
            weights="quadratic",
            n_boot=300,
            seed=seed,
            clusters="case",
        ),
    ),
    (
        "fleiss_kappa",
        {"n_boot": 300},
        4,
        lambda d, seed: agreement.fleiss_kappa(
            d,
            subjects="unit",
            raters="rater",
            ratings="value",
            n_boot=300,
            seed=seed,
            clusters="case",
        ),
    ),
]


@pytest.mark.parametrize(("statistic", "options", "raters", "direct"), CASES)
def test_agreement_endpoint_resamples_cases_with_the_plan_seed(
    statistic: str, options: dict[str, Any], raters: int, direct: Any
) -> None:
    data = _data(raters)
    report = evaluate_criteria(data, plan=_plan(statistic, options), seed=20261126)
    res = report.results[1]
    ref = direct(data, 20261126)
    assert (res.estimate, res.ci_low, res.ci_high) == (ref.estimate, ref.ci_low, ref.ci_high)
    assert res.details["n_clusters"] == 25  # the cases, each with both arms
    assert res.details["seed"] == 20261126
    assert res.details["interval"] == "bootstrap over cases (all their arms and raters)"
    # deterministic re-runs; the endpoint's own seed takes precedence
    again = evaluate_criteria(data, plan=_plan(statistic, options), seed=20261126).results[1]
    assert (again.ci_low, again.ci_high) == (res.ci_low, res.ci_high)
    own = evaluate_criteria(data, plan=_plan(statistic, {**options, "seed": 7}), seed=20261126)
    assert own.results[1].details["seed"] == 7
    assert (own.results[1].ci_low, own.results[1].ci_high) == (
        direct(data, 7).ci_low,
        direct(data, 7).ci_high,
    )


def test_intra_rater_endpoint_resamples_cases() -> None:
    data = _data(3)
    repeats = data[data["case"] < "c010"].assign(
        value=lambda d: np.clip(d["value"] + np.where(np.arange(len(d)) % 4 == 0, 1, 0), 1, 5)
    )
    both = pd.concat([data.assign(second=False), repeats.assign(second=True)], ignore_index=True)
    plan = _plan("intra_rater", {"method": "kappa", "n_boot": 300})
    res = evaluate_criteria(both, plan=plan, repeat="second", seed=5).results[1]
    ref = agreement.intra_rater_agreement(
        both,
        items="unit",
        raters="rater",
        ratings="value",
        repeat="second",
        method="kappa",
        n_boot=300,
        seed=5,
        clusters="case",
    )
    assert (res.estimate, res.ci_low, res.ci_high) == (ref.estimate, ref.ci_low, ref.ci_high)
    assert res.details["n_clusters"] == 10
