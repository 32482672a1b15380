"""Accuracy endpoints: hand-checked proportions, plans written as YAML, simulated coverage."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats as sps
from scipy.special import expit

from studyhub.protocol.plan import AnalysisPlan, Endpoint
from studyhub.stats import evaluate_criteria
from studyhub.stats._proportions import proportion_endpoint

PLAN_YAML = """
id: categorical_sap
protocol: p
alpha: 0.05
confidence: 0.95
endpoints:
  - id: defect_accuracy
    primary: true
    description: Raters name the defect class correctly
    measure: defect
    statistic: accuracy
    hypothesis: {type: proportion, threshold: 0.3}
    success_criterion: The lower 95% limit of the proportion correct is at least 0.3.
  - id: defect_kappa
    description: Agreement on the defect class
    measure: defect
    statistic: fleiss_kappa
    hypothesis: {type: agreement, threshold: 0.2}
    success_criterion: The lower 95% limit of Fleiss' kappa is at least 0.2.
  - id: recognise_prediction
    description: Raters recognise the model's decision
    measure: defect
    statistic: accuracy
    hypothesis: {type: proportion, threshold: 0.3}
    success_criterion: The lower limit of the share naming the prediction is at least 0.3.
    options: {against: prediction, choice_labels: {no defect: none}}
"""

CHOICES = ["no defect", "crack", "scratch"]
CLASSES = ["none", "crack", "scratch"]


def _answers(
    n_raters: int = 6, n_cases: int = 30, p_right: float = 0.8, seed: int = 3
) -> pd.DataFrame:
    """single_choice answers (value = 1-based position, label = the choice text)."""
    cases = np.random.default_rng(99)  # the same cases in every call
    truth = cases.integers(0, 3, n_cases)
    predicted = np.where(cases.random(n_cases) < 0.7, truth, (truth + 1) % 3)
    rng = np.random.default_rng(seed)
    rows = []
    for r in range(n_raters):
        for c in range(n_cases):
            pick = truth[c] if rng.random() < p_right else rng.integers(0, 3)
            rows.append(
                {
                    "rater": f"r{r}",
                    "case": f"c{c}",
                    "arm": "ig",
                    "measure": "defect",
                    "value": float(pick + 1),
                    "label": CHOICES[pick],
                    "truth": CLASSES[truth[c]],
                    "predicted": CLASSES[predicted[c]],
                }
            )
    return pd.DataFrame(rows)


def test_a_categorical_plan_runs_kappa_and_accuracy() -> None:
    plan = AnalysisPlan.model_validate(yaml.safe_load(PLAN_YAML))
    data = _answers()
    report = evaluate_criteria(
        data, plan=plan, truth="truth", label="label", prediction="predicted", seed=1
    )
    res = {r.endpoint: r for r in report.results}
    acc = res["defect_accuracy"]
    # "no defect" is not spelled "none": without choice_labels it never counts as right
    mapped = data["label"].replace({"no defect": "none"})
    assert acc.estimate == pytest.approx((data["label"] == data["truth"]).mean())
    assert acc.estimate < (mapped == data["truth"]).mean()
    assert acc.verdict == "PASS" and acc.p_adjusted is not None
    assert acc.population.startswith("new raters and cases")
    kappa = res["defect_kappa"]
    assert kappa.verdict in ("PASS", "FAIL") and kappa.estimate is not None
    assert 0.4 < kappa.estimate < 0.9
    pred = res["recognise_prediction"]
    assert pred.estimate == pytest.approx((mapped == data["predicted"]).mean())
    assert pred.details["against"] == "prediction"


def test_kappa_on_categories_equals_kappa_on_their_codes() -> None:
    """A single choice's text and its position correspond one to one: same kappa."""
    plan = AnalysisPlan.model_validate(yaml.safe_load(PLAN_YAML))
    data = _answers()
    with_text = evaluate_criteria(data, plan=plan, label="label", truth="truth").results[1]
    codes = evaluate_criteria(data, plan=plan, truth="truth").results[1]
    assert with_text.estimate == pytest.approx(codes.estimate, abs=1e-12)


def test_diagnosis_kappa_reads_the_class_not_the_confidence() -> None:
    plan = AnalysisPlan.model_validate(yaml.safe_load(PLAN_YAML))
    data = _answers().assign(measure="defect")
    # confidences that disagree everywhere, classes that agree: kappa follows the classes
    data["value"] = np.random.default_rng(0).integers(0, 101, len(data)).astype(float)
    res = evaluate_criteria(data, plan=plan, label="label", truth="truth").results[1]
    assert res.estimate is not None and res.estimate > 0.4


def _endpoint(**extra: object) -> Endpoint:
    base: dict[str, object] = {
        "id": "acc",
        "description": "accuracy",
        "measure": "defect",
        "statistic": "accuracy",
        "hypothesis": {"type": "proportion", "threshold": 0.5},
        "success_criterion": "lower limit at least 0.5",
    }
    return Endpoint.model_validate({**base, **extra})


def test_proportion_by_hand_matches_the_anova_moment_estimator() -> None:
    """3 raters x 4 cases, one answer each: V = (MS_rater + MS_case - MS_residual) / (R C)."""
    y = np.array([[1, 1, 0, 1], [1, 0, 0, 1], [1, 1, 1, 1]], dtype=float)
    rows = pd.DataFrame(
        [
            {"arm": "a", "rater": f"r{r}", "case": f"c{c}", "hit": y[r, c]}
            for r in range(3)
            for c in range(4)
        ]
    )
    est = proportion_endpoint(rows, _endpoint(), 0.95, what="correct answers", details={})
    assert est.estimate == pytest.approx(9 / 12)
    n_r, n_c = y.shape
    grand = y.mean()
    ms_r = n_c * np.sum((y.mean(1) - grand) ** 2) / (n_r - 1)
    ms_c = n_r * np.sum((y.mean(0) - grand) ** 2) / (n_c - 1)
    resid = y - y.mean(1, keepdims=True) - y.mean(0, keepdims=True) + grand
    ms_e = np.sum(resid**2) / ((n_r - 1) * (n_c - 1))
    var = (ms_r + ms_c - ms_e) / (n_r * n_c)
    assert est.details["stderr"] == pytest.approx(math.sqrt(var))
    df = (ms_r + ms_c - ms_e) ** 2 / (ms_r**2 / 2 + ms_c**2 / 3 + ms_e**2 / 6)
    assert est.details["df"] == pytest.approx(df)
    # the bound on the logit scale, back-transformed
    se_logit = math.sqrt(var) / (0.75 * 0.25)
    low = expit(math.log(3) - sps.t.ppf(0.95, df) * se_logit)
    assert est.ci_low == pytest.approx(low)


def test_a_difference_of_two_arms() -> None:
    data = pd.concat(
        [
            _answers(p_right=0.9, seed=1).assign(arm="ig"),
            _answers(p_right=0.5, seed=2).assign(arm="random"),
        ]
    )
    ep = _endpoint(
        comparison={"arm": "ig", "versus": "random"},
        hypothesis={"type": "superiority"},
        primary=True,
    )
    plan = AnalysisPlan(id="s", protocol="p", endpoints=[ep])
    res = evaluate_criteria(data, plan=plan, truth="truth", label="label").results[0]
    by_arm = data.assign(ok=data["label"] == data["truth"]).groupby("arm")["ok"].mean()
    assert res.estimate == pytest.approx(by_arm["ig"] - by_arm["random"])
    assert res.verdict == "PASS"


def test_all_answers_right_is_not_evaluable_with_the_reason() -> None:
    data = _answers(p_right=1.0)
    ep = _endpoint(primary=True, options={"choice_labels": {"no defect": "none"}})
    plan = AnalysisPlan(id="s", protocol="p", endpoints=[ep])
    res = evaluate_criteria(data, plan=plan, truth="truth", label="label").results[0]
    assert res.verdict == "NOT EVALUABLE"
    assert "do not vary" in res.reason and "estimate 1" in res.reason


def test_accuracy_without_the_answer_text_says_which_column_to_pass() -> None:
    plan = AnalysisPlan(id="s", protocol="p", endpoints=[_endpoint(primary=True)])
    res = evaluate_criteria(_answers(), plan=plan, truth="truth").results[0]
    assert res.verdict == "NOT EVALUABLE" and "pass label='COLUMN'" in res.reason


def _population_accuracy(mu: float, sd: float) -> float:
    x, w = np.polynomial.hermite_e.hermegauss(80)
    return float(np.sum(w * expit(mu + sd * x)) / math.sqrt(2 * math.pi))


@pytest.mark.slow
def test_simulated_coverage_for_new_raters_and_cases() -> None:
    """Crossed random rater and case effects on the logit scale; the target is the
    accuracy of the rater and case populations. 800 studies: Monte Carlo SE 0.0077,
    so a one-sided 95 % bound must cover within 3 SE of 0.95."""
    rng = np.random.default_rng(20261126)
    n_raters, n_cases, mu, sd_r, sd_c = 8, 40, 1.5, 0.5, 1.0
    target = _population_accuracy(mu, math.hypot(sd_r, sd_c))
    ep = _endpoint(primary=True)
    raters = np.repeat([f"r{r}" for r in range(n_raters)], n_cases)
    cases = np.tile([f"c{c}" for c in range(n_cases)], n_raters)
    covered, n_sims = 0, 800
    for _ in range(n_sims):
        eta = mu + sd_r * rng.normal(size=(n_raters, 1)) + sd_c * rng.normal(size=(1, n_cases))
        hit = (rng.random((n_raters, n_cases)) < expit(eta)).astype(float).ravel()
        rows = pd.DataFrame({"arm": "a", "rater": raters, "case": cases, "hit": hit})
        est = proportion_endpoint(rows, ep, 0.95, what="answers", details={})
        covered += est.ci_low is not None and est.ci_low <= target
    se = math.sqrt(0.95 * 0.05 / n_sims)
    assert abs(covered / n_sims - 0.95) < 3 * se, covered / n_sims
