"""Success criteria: verdicts from a plan, multiplicity across primary endpoints, edge cases."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from studyhub.protocol.plan import AnalysisPlan
from studyhub.stats import adjust_pvalues, evaluate_criteria
from tests.paths import DATA


def _ratings(
    effects: dict[str, float], *, n_raters: int = 6, n_cases: int = 30, seed: int = 0
) -> pd.DataFrame:
    """Usefulness 1..5 from a crossed model: rater + case + arm effect + noise, rounded."""
    rng = np.random.default_rng(seed)
    r_eff = rng.normal(0, 0.3, n_raters)
    c_eff = rng.normal(0, 0.5, n_cases)
    rows = []
    for r in range(n_raters):
        for c in range(n_cases):
            for arm, eff in effects.items():
                y = 3 + r_eff[r] + c_eff[c] + eff + rng.normal(0, 0.7)
                rows.append(
                    {
                        "rater": f"r{r}",
                        "case": f"c{c}",
                        "arm": arm,
                        "measure": "usefulness",
                        "value": float(np.clip(np.rint(y), 1, 5)),
                    }
                )
    return pd.DataFrame(rows)


def _plan(endpoints: list[dict[str, Any]], multiplicity: str = "holm") -> AnalysisPlan:
    return AnalysisPlan.model_validate(
        {
            "id": "sap",
            "protocol": "p",
            "alpha": 0.05,
            "multiplicity": multiplicity,
            "endpoints": endpoints,
        }
    )


def _sup(
    id_: str, arm: str, versus: str, *, primary: bool = True, statistic: str = "mixed_model"
) -> dict[str, Any]:
    return {
        "id": id_,
        "primary": primary,
        "description": "an endpoint",
        "measure": "usefulness",
        "statistic": statistic,
        "comparison": {"arm": arm, "versus": versus},
        "hypothesis": {"type": "superiority"},
        "success_criterion": f"{arm} beats {versus} one-sided",
    }


def test_clear_effect_passes_and_null_fails() -> None:
    data = _ratings({"ig": 1.0, "random": 0.0, "same": 0.0})
    report = evaluate_criteria(
        data, plan=_plan([_sup("a", "ig", "random"), _sup("b", "same", "random")])
    )
    verdicts = {r.endpoint: r.verdict for r in report.results}
    assert verdicts == {"a": "PASS", "b": "FAIL"}
    a = report.results[0]
    assert a.estimate == pytest.approx(1.0, abs=0.25)
    assert a.ci_low is not None and a.ci_low > 0
    assert a.criterion == "ig beats random one-sided"
    assert not report.success
    assert list(report.table["verdict"]) == ["PASS", "FAIL"]


def test_holm_adjustment_across_primary_endpoints_only() -> None:
    data = _ratings({"ig": 0.35, "gc": 0.3, "random": 0.0}, seed=3)
    plan = _plan(
        [_sup("a", "ig", "random"), _sup("b", "gc", "random"), _sup("c", "gc", "ig", primary=False)]
    )
    report = evaluate_criteria(data, plan=plan)
    raw = [report.results[0].p_value, report.results[1].p_value]
    expected = adjust_pvalues(np.array(raw), "holm")
    assert [report.results[0].p_adjusted, report.results[1].p_adjusted] == pytest.approx(
        list(expected)
    )
    # secondary endpoints are not adjusted
    assert report.results[2].p_adjusted == report.results[2].p_value


def test_non_inferiority_with_margin() -> None:
    data = _ratings({"gc": -0.1, "ig": 0.0}, n_raters=8, n_cases=40, seed=1)
    ni = {
        "id": "ni",
        "primary": True,
        "description": "an endpoint",
        "measure": "usefulness",
        "statistic": "mixed_model",
        "comparison": {"arm": "gc", "versus": "ig"},
        "hypothesis": {"type": "non_inferiority", "margin": 0.5},
        "success_criterion": "lower limit above -0.5",
    }
    res = evaluate_criteria(data, plan=_plan([ni])).results[0]
    assert res.verdict == "PASS"
    assert res.ci_low is not None and res.ci_low > -0.5
    assert "difference <= -0.5" in res.reason
    tight = dict(ni, hypothesis={"type": "non_inferiority", "margin": 0.01})
    assert evaluate_criteria(data, plan=_plan([tight])).results[0].verdict == "FAIL"


def test_fixed_sequence_stops_at_the_first_failure() -> None:
    data = _ratings({"ig": 1.0, "same": 0.0, "gc": 1.0, "random": 0.0}, seed=2)
    plan = _plan(
        [
            _sup("first", "ig", "random"),
            _sup("second", "same", "random"),
            _sup("third", "gc", "random"),
        ],
        multiplicity="fixed_sequence",
    )
    verdicts = [(r.verdict, r.reason) for r in evaluate_criteria(data, plan=plan).results]
    assert verdicts[0][0] == "PASS"
    assert verdicts[1][0] == "FAIL"
    assert verdicts[2] == ("FAIL", "not reached: the fixed sequence stopped at 'second'")


def test_missing_arm_is_not_evaluable_and_never_passes() -> None:
    data = _ratings({"ig": 1.0, "random": 0.0})
    res = evaluate_criteria(data, plan=_plan([_sup("a", "gradcam", "random")])).results[0]
    assert res.verdict == "NOT EVALUABLE"
    assert "['gradcam'] have no ratings" in res.reason


def test_agreement_threshold_on_the_lower_limit() -> None:
    data = _ratings({"ig": 0.0, "gc": 0.0}, n_raters=5, n_cases=40, seed=4)
    ep = {
        "id": "agree",
        "description": "an endpoint",
        "primary": False,  # agreement describes the raters read: secondary only
        "measure": "usefulness",
        "statistic": "krippendorff_alpha",
        "arms": ["ig", "gc"],
        "hypothesis": {"type": "agreement", "threshold": 0.2},
        "success_criterion": "lower limit of alpha at least 0.2",
        "options": {"n_boot": 500, "level": "ordinal"},
    }
    res = evaluate_criteria(data, plan=_plan([ep, _sup("a", "ig", "gc")])).results[0]
    assert res.estimate is not None and res.ci_low is not None
    assert res.ci_low < res.estimate < (res.ci_high or 0)
    assert res.verdict == ("PASS" if res.ci_low >= 0.2 else "FAIL")
    strict = dict(ep, hypothesis={"type": "agreement", "threshold": 0.99})
    assert (
        evaluate_criteria(data, plan=_plan([strict, _sup("a", "ig", "gc")])).results[0].verdict
        == "FAIL"
    )


def test_mrmc_endpoint_on_van_dyke() -> None:
    vd = pd.read_csv(DATA / "reference" / "vandyke_mrmc_roc" / "ratings_long.csv")
    data = vd.assign(
        rater=vd["reader"],
        arm=vd["modality"].map({1: "spin_echo", 2: "cine"}),
        measure="diagnosis",
        value=vd["rating"],
    )
    ep = {
        "id": "auc",
        "primary": True,
        "description": "an endpoint",
        "measure": "auc",
        "statistic": "mrmc",
        "comparison": {"arm": "cine", "versus": "spin_echo"},
        "hypothesis": {"type": "superiority"},
        "success_criterion": "cine-MRI AUC exceeds spin-echo AUC",
    }
    res = evaluate_criteria(data, plan=_plan([ep]), truth="truth").results[0]
    # OR-DBM MRMC 2.51 (RJafroc inst/Iowa/VanDyke.txt): AUC difference 0.04380032 (cine minus
    # spin echo), random readers and cases p = 0.0517 two-sided, so one-sided p = 0.0258
    assert res.estimate == pytest.approx(0.04380032, abs=5e-9)
    assert res.p_value == pytest.approx(0.0517 / 2, abs=1e-4)
    assert res.verdict == "PASS"


def test_mrmc_without_truth_is_not_evaluable() -> None:
    data = _ratings({"a": 0.0, "b": 0.0})
    ep = {
        "id": "auc",
        "primary": True,
        "description": "an endpoint",
        "measure": "auc",
        "statistic": "mrmc",
        "comparison": {"arm": "a", "versus": "b"},
        "hypothesis": {"type": "superiority"},
        "success_criterion": "a AUC exceeds b AUC",
    }
    res = evaluate_criteria(data, plan=_plan([ep])).results[0]
    assert res.verdict == "NOT EVALUABLE" and "truth" in res.reason


# --- the plan evaluated exactly as written (issue 11) ---


def _contrast(data: pd.DataFrame, arm: str, versus: str) -> pd.Series:
    """The mixed model's contrast with compare_arms' defaults: estimate, se and df."""
    from studyhub.stats import compare_arms

    sub = data[data["arm"].isin([arm, versus])]
    res = compare_arms(
        sub, arm="arm", rating="value", rater="rater", case="case", contrasts=[(arm, versus)]
    )
    return res.contrasts.iloc[0]


def test_a_not_evaluable_primary_stays_in_the_family() -> None:
    """A third primary endpoint without data counts in Holm's m with p = 1: the other two
    cannot pass because it had no data (p_adj 0.039 with m = 2 becomes 0.058 with m = 3)."""
    data = _ratings({"ig": 0.2, "gc": 0.3, "random": 0.0}, seed=41)
    two = [_sup("a", "ig", "random"), _sup("b", "gc", "random")]
    without = evaluate_criteria(data, plan=_plan(two))
    assert [r.verdict for r in without.results] == ["PASS", "PASS"]  # m = 2: 0.039, 0.039
    report = evaluate_criteria(data, plan=_plan([*two, _sup("c", "gradcam", "random")]))
    a, b, c = report.results
    expected = adjust_pvalues([a.p_value or 0.0, b.p_value or 0.0, 1.0], "holm")
    assert [a.p_adjusted, b.p_adjusted] == pytest.approx(list(expected[:2]), rel=1e-12)
    assert a.p_adjusted == pytest.approx(3 * (a.p_value or 0.0))  # 0.058: m = 3, not 2
    assert [a.verdict, b.verdict, c.verdict] == ["FAIL", "FAIL", "NOT EVALUABLE"]
    assert "counted in the holm family of 3 primary comparisons with p = 1" in c.reason
    assert report.family == ["a", "b", "c"]
    assert not report.success
    assert report.not_passed == ["a (FAIL)", "b (FAIL)", "c (NOT EVALUABLE)"]
    assert "a primary endpoint that FAILS or is NOT EVALUABLE fails the study" in (
        report.success_rule
    )


def test_a_not_evaluable_primary_stays_in_a_bonferroni_family() -> None:
    data = _ratings({"ig": 0.2, "gc": 0.2, "random": 0.0}, seed=10)
    plan = _plan(
        [_sup("a", "ig", "random"), _sup("c", "gradcam", "random"), _sup("b", "gc", "random")],
        multiplicity="bonferroni",
    )
    a, c, b = evaluate_criteria(data, plan=plan).results
    assert c.verdict == "NOT EVALUABLE" and c.p_adjusted is None
    assert a.p_adjusted == pytest.approx(3 * (a.p_value or 0.0), rel=1e-12)
    assert b.p_adjusted == pytest.approx(3 * (b.p_value or 0.0), rel=1e-12)


def test_fixed_sequence_follows_the_plans_order_not_the_arm_names() -> None:
    """A strong arm named z_strong listed before a null b_weak is tested first and passes."""
    data = _ratings({"z_strong": 1.0, "b_weak": 0.0, "control": 0.0}, seed=2)
    plan = _plan(
        [_sup("strong", "z_strong", "control"), _sup("weak", "b_weak", "control")],
        multiplicity="fixed_sequence",
    )
    strong, weak = evaluate_criteria(data, plan=plan).results
    assert strong.verdict == "PASS" and weak.verdict == "FAIL"
    assert weak.reason.startswith("H0 (difference <= 0) not rejected")
    # the adjusted p-value of a fixed sequence is the running maximum
    assert weak.p_adjusted == max(strong.p_value or 0.0, weak.p_value or 0.0)


def test_a_not_evaluable_endpoint_stops_the_fixed_sequence() -> None:
    data = _ratings({"ig": 1.0, "random": 0.0}, seed=2)
    plan = _plan(
        [_sup("missing", "gradcam", "random"), _sup("clear", "ig", "random")],
        multiplicity="fixed_sequence",
    )
    missing, clear = evaluate_criteria(data, plan=plan).results
    assert missing.verdict == "NOT EVALUABLE"
    assert (clear.verdict, clear.reason) == (
        "FAIL",
        "not reached: the fixed sequence stopped at 'missing'",
    )
    assert clear.p_adjusted == 1.0
    assert clear.ci_adjustment.endswith("not reached, so no confidence claim")


def test_intervals_are_one_sided_at_the_plans_confidence() -> None:
    """One primary superiority endpoint: its interval is the one-sided 95 % lower bound
    (plan.confidence), not a two-sided 90 % interval (1 - 2 alpha)."""
    from scipy import stats

    data = _ratings({"ig": 0.4, "random": 0.0}, seed=5)
    res = evaluate_criteria(data, plan=_plan([_sup("a", "ig", "random")])).results[0]
    row = _contrast(data, "ig", "random")
    lower = row["estimate"] - stats.t.ppf(0.95, row["df"]) * row["se"]
    assert res.ci_high == math.inf  # a lower bound: no upper limit is claimed
    assert res.ci_low == pytest.approx(lower, rel=1e-9)
    assert (res.ci_level, res.ci_sides) == (0.95, 1)
    assert res.ci_adjustment == "unadjusted: a family of one primary test"


def test_intervals_follow_the_plans_confidence_when_it_is_not_the_default() -> None:
    """alpha 0.1 with confidence 0.9: one-sided 90 % bounds (the default was two-sided 80 %)."""
    from scipy import stats

    data = _ratings({"ig": 0.4, "random": 0.0}, seed=5)
    plan = AnalysisPlan.model_validate(
        {
            "id": "sap",
            "protocol": "p",
            "alpha": 0.1,
            "confidence": 0.9,
            "endpoints": [_sup("a", "ig", "random")],
        }
    )
    res = evaluate_criteria(data, plan=plan).results[0]
    row = _contrast(data, "ig", "random")
    assert res.ci_high == math.inf
    assert res.ci_low == pytest.approx(
        row["estimate"] - stats.t.ppf(0.9, row["df"]) * row["se"], rel=1e-9
    )
    assert res.ci_level == 0.9


@pytest.mark.parametrize("multiplicity", ["bonferroni", "holm"])
def test_intervals_are_adjusted_where_the_verdicts_are(multiplicity: str) -> None:
    """Two primary comparisons under Bonferroni or Holm: one-sided 97.5 % lower bounds
    (1 - 0.05 / 2), which agree with the Bonferroni verdicts."""
    from scipy import stats

    data = _ratings({"ig": 0.2, "gc": 0.2, "random": 0.0}, seed=10)
    plan = _plan([_sup("a", "ig", "random"), _sup("b", "gc", "random")], multiplicity)
    report = evaluate_criteria(data, plan=plan)
    for res, arm in zip(report.results, ("ig", "gc"), strict=True):
        row = _contrast(data, arm, "random")
        lower = row["estimate"] - stats.t.ppf(1 - 0.05 / 2, row["df"]) * row["se"]
        assert res.ci_low == pytest.approx(lower, rel=1e-9)
        assert (res.ci_level, res.ci_sides, res.ci_high) == (0.975, 1, math.inf)
        assert res.ci_adjustment.startswith(
            "Bonferroni-adjusted over 2" if multiplicity == "bonferroni" else "Bonferroni level"
        )
        assert (res.ci_low > 0) == ((res.p_value or 1.0) * 2 < 0.05)
    if multiplicity == "holm":
        # Holm's second step rejects at the full alpha: its verdict may pass while the
        # Bonferroni-level bound still holds 0, which the label says
        assert "a later Holm step may reject with the null value inside" in (
            report.results[0].ci_adjustment
        )


def test_fixed_sequence_intervals_are_unadjusted_at_the_full_level() -> None:
    from scipy import stats

    data = _ratings({"ig": 1.0, "gc": 0.4, "random": 0.0}, seed=2)
    plan = _plan(
        [_sup("a", "ig", "random"), _sup("b", "gc", "random")], multiplicity="fixed_sequence"
    )
    for res, arm in zip(evaluate_criteria(data, plan=plan).results, ("ig", "gc"), strict=True):
        row = _contrast(data, arm, "random")
        lower = row["estimate"] - stats.t.ppf(0.95, row["df"]) * row["se"]
        assert res.ci_low == pytest.approx(lower, rel=1e-9)
        assert res.ci_level == 0.95
        assert (
            res.ci_adjustment == "unadjusted: the fixed sequence of 2 tests spends the full level"
        )


def test_agreement_bounds_are_one_sided_at_the_plans_confidence() -> None:
    """The agreement threshold is a one-sided hypothesis: the lower bound is the one-sided
    95 % bound (the lower limit of the equal-tailed 90 % interval), reported unadjusted."""
    from studyhub.stats import krippendorff_alpha

    data = _ratings({"ig": 0.0, "gc": 0.0}, n_raters=5, n_cases=40, seed=4)
    ep = {
        "id": "agree",
        "description": "an endpoint",
        "primary": False,
        "measure": "usefulness",
        "statistic": "krippendorff_alpha",
        "arms": ["ig", "gc"],
        "hypothesis": {"type": "agreement", "threshold": 0.2},
        "success_criterion": "lower limit of alpha at least 0.2",
        "options": {"n_boot": 500, "level": "ordinal"},
    }
    res = evaluate_criteria(data, plan=_plan([ep, _sup("a", "ig", "gc")])).results[0]
    units = data.assign(unit=data["case"] + "|" + data["arm"])
    direct = krippendorff_alpha(
        units,
        units="unit",
        raters="rater",
        ratings="value",
        level="ordinal",
        clusters="case",
        confidence=0.90,
    )
    assert res.ci_low == pytest.approx(direct.ci_low, rel=1e-12)
    assert (res.ci_level, res.ci_sides, res.ci_high) == (0.95, 1, math.inf)
    assert res.ci_adjustment == "unadjusted: a secondary endpoint"
    assert (
        res.population == "conditional on the raters read (agreement of these raters, random cases)"
    )


def test_results_say_to_whom_they_generalise() -> None:
    data = _ratings({"ig": 0.5, "random": 0.0}, seed=1)
    plan = _plan(
        [
            _sup("mixed", "ig", "random"),
            _sup("rank", "ig", "random", primary=False, statistic="friedman"),
            _sup("odds", "ig", "random", primary=False, statistic="ordinal"),
        ]
    )
    mixed, rank, odds = evaluate_criteria(data, plan=plan).results
    assert mixed.population == "new raters and cases (random rater and case effects)"
    no_interactions = dict(  # a secondary analysis: validate refuses it as a primary one
        _sup("narrow", "ig", "random", primary=False),
        options={"rater_by_arm": False, "case_by_arm": False},
    )
    _, narrow = evaluate_criteria(
        data, plan=_plan([plan.endpoints[0].model_dump(), no_interactions])
    ).results
    assert narrow.population == (
        "new raters and cases (random rater and case effects); assumes no rater x arm or "
        "case x arm variation"
    )
    for res in (rank, odds):
        assert res.population == (
            "conditional on the raters read (fixed raters, random cases): sensitivity analysis"
        )
        assert res.ci_adjustment == "unadjusted: a secondary endpoint"
