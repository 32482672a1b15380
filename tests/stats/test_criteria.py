"""Success criteria: verdicts from a plan, multiplicity across primary endpoints, edge cases."""

from __future__ import annotations

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
        "primary": True,
        "measure": "usefulness",
        "statistic": "krippendorff_alpha",
        "arms": ["ig", "gc"],
        "hypothesis": {"type": "agreement", "threshold": 0.2},
        "success_criterion": "lower limit of alpha at least 0.2",
        "options": {"n_boot": 500, "level": "ordinal"},
    }
    res = evaluate_criteria(data, plan=_plan([ep])).results[0]
    assert res.estimate is not None and res.ci_low is not None
    assert res.ci_low < res.estimate < (res.ci_high or 0)
    assert res.verdict == ("PASS" if res.ci_low >= 0.2 else "FAIL")
    strict = dict(ep, hypothesis={"type": "agreement", "threshold": 0.99})
    assert evaluate_criteria(data, plan=_plan([strict])).results[0].verdict == "FAIL"


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
