"""A realistic ReportInput built without the store: simulated ratings through a real plan.

Ratings come from the crossed rater x case x arm model of tests/stats/helpers.py,
the plan is parsed from YAML by studyhub.protocol.load and judged by
evaluate_criteria, MRMC curves come from simulated diagnosis confidences through
studyhub.stats.mrmc; flow, deviations and amendments are written by hand as
analyze would record them.
"""

from __future__ import annotations

import dataclasses
import io
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from studyhub.evidence.analyze import criteria_dict
from studyhub.evidence.report import (
    AmendmentRecord,
    CalibrationData,
    MRMCData,
    ReportInput,
    StudyInfo,
    roc_points,
)
from studyhub.protocol.load import load_plan
from studyhub.stats import evaluate_criteria
from studyhub.stats.mrmc import mrmc
from tests.stats.helpers import crossed

#: Account names of the simulated raters: they must never reach the report.
ACCOUNTS = ("alice.morgan", "bjorn.keller", "chen.wei", "dana.osei", "emil.novak", "fatima.rahman")

PLAN_YAML = """\
id: report_demo_sap
protocol: report_demo
alpha: 0.05
confidence: 0.95
multiplicity: holm

endpoints:
  - id: ig_vs_control
    primary: true
    description: Integrated gradients are more useful than the control maps
    measure: usefulness
    statistic: mixed_model
    comparison: {arm: ig, versus: control}
    hypothesis: {type: superiority}
    success_criterion: >
      The mean usefulness of ig exceeds that of control, one-sided Holm-adjusted
      p < 0.05 from the mixed model with crossed rater and case effects.

  - id: gradcam_vs_ig
    primary: true
    description: Grad-CAM is not less useful than integrated gradients
    measure: usefulness
    statistic: mixed_model
    comparison: {arm: gradcam, versus: ig}
    hypothesis: {type: non_inferiority, margin: 0.5}
    success_criterion: >
      The lower 95% confidence limit of usefulness(gradcam) - usefulness(ig) lies
      above -0.5 scale points.

  - id: ig_vs_randomized
    description: Sensitivity analysis against the weight-randomized model
    measure: usefulness
    statistic: cluster_bootstrap
    comparison: {arm: ig, versus: randomized_model}
    hypothesis: {type: superiority}
    success_criterion: The 95% two-way cluster-bootstrap interval of the difference lies above 0.
    options: {n_boot: 200}

  - id: usefulness_agreement
    description: Inter-rater agreement on usefulness of the method arms
    measure: usefulness
    statistic: krippendorff_alpha
    arms: [ig, gradcam]
    hypothesis: {type: agreement, threshold: 0.9}
    success_criterion: The lower 95% bootstrap limit of Krippendorff's ordinal alpha is at least 0.9.
    options: {level: ordinal, n_boot: 200}

  - id: deletion_correlation
    description: Usefulness follows the deletion score of the maps
    measure: "metric:deletion_auc"
    statistic: spearman
    hypothesis: {type: correlation, threshold: 0.1}
    success_criterion: The lower 95% limit of Spearman's rho between deletion AUC and usefulness is at least 0.1.
    options: {item: usefulness, n_boot: 200}
"""

N_RATERS, N_CASES = 6, 20
COMMENTS = (
    "The map highlights the scratch clearly.",
    "Attribution spread over the background; not helpful.",
    "Focus on the weld seam, plausible.",
    "Noisy map, hard to read — ≥ 3 hot spots.",
)


def _png(seed: int, size: int = 48) -> bytes:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size]
    base = np.exp(-((x - rng.integers(8, 40)) ** 2 + (y - rng.integers(8, 40)) ** 2) / 120.0)
    rgb = np.stack([base, 0.3 * base, 1 - base], axis=-1)
    buf = io.BytesIO()
    Image.fromarray((255 * rgb).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def answers_frame(seed: int = 11) -> pd.DataFrame:
    """The tidy answers: one Likert item on three arms plus free-text comments."""
    rng = np.random.default_rng(seed)
    sim = crossed(rng, n_raters=N_RATERS, n_cases=N_CASES, effects=(0.0, 0.9, 1.0))
    value = np.clip(np.rint(3 + sim["score"]), 1, 5).astype(int)
    rows = pd.DataFrame(
        {
            "study": "report_demo",
            "rater": [f"rater-{int(r[1:]) + 1}" for r in sim["reader"]],
            "session": 1,
            "case": [f"case-{c + 1}" for c in sim["case"]],
            "stimulus": [f"s{i:04d}" for i in range(len(sim))],
            "arm": sim["arm"],
            "item": "usefulness",
            "item_type": "likert",
            "value": value.astype(float),
            "label": value.astype(str),
            "kind": "read",
            "repeat": False,
            "catch": False,
        }
    )
    texts = rows.iloc[:: len(rows) // 8].copy()
    texts["item"] = "comment"
    texts["item_type"] = "free_text"
    texts["value"] = np.nan
    texts["label"] = [COMMENTS[i % len(COMMENTS)] for i in range(len(texts))]
    return pd.concat([rows, texts], ignore_index=True)


def metrics_frame(answers: pd.DataFrame, seed: int = 3) -> pd.DataFrame:
    """A deletion AUC per stimulus (case x arm) that tracks the mean rating."""
    rng = np.random.default_rng(seed)
    use = answers[answers["item"] == "usefulness"]
    mean = use.groupby(["case", "arm"])["value"].mean().reset_index()
    mean["deletion_auc"] = 0.1 * mean["value"] + rng.normal(0, 0.08, len(mean))
    return mean[["case", "arm", "deletion_auc"]]


def mrmc_data(seed: int = 5) -> MRMCData:
    """Four readers diagnose 30 cases under two arms; ig separates the classes better."""
    rng = np.random.default_rng(seed)
    truth = rng.permutation(np.r_[np.ones(15), np.zeros(15)]).astype(int)
    rows = []
    for r in range(4):
        for arm, d in (("control", 1.0), ("ig", 1.8)):
            score = truth * d + rng.normal(0, 1, truth.size)
            conf = np.clip(np.rint(50 + 20 * score), 0, 100)
            rows += [
                {
                    "rater": f"rater-{r + 1}",
                    "arm": arm,
                    "case": f"case-{c + 1}",
                    "truth": t,
                    "value": v,
                }
                for c, (t, v) in enumerate(zip(truth, conf, strict=True))
            ]
    data = pd.DataFrame(rows)
    res = mrmc(data, reader="rater", modality="arm", case="case", truth="truth", rating="value")
    roc = roc_points(data, reader="rater", arm="arm", truth="truth", rating="value")
    return MRMCData(roc=roc, or_table=res.rrrc.differences.round(4))


def cases_frame(seed: int = 9) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.35, 1.0, N_CASES)
    return pd.DataFrame(
        {
            "case": [f"case-{c + 1}" for c in range(N_CASES)],
            "truth": rng.choice(["scratch", "dent"], N_CASES),
            "probability": p,
            "correct": rng.uniform(size=N_CASES) < p,
            "split": "test",
        }
    )


SAMPLING_REPORT: dict[str, Any] = {
    "flow": {
        "assessed": 240,
        "excluded_by_reason": {"no mask": 12, "duplicate image": 3},
        "eligible": 225,
        "enrolled": N_CASES,
    },
    "strata": [
        {"stratum": "scratch", "eligible": 120, "quota": 10, "sample": 10},
        {"stratum": "dent", "eligible": 105, "quota": 10, "sample": 10},
    ],
    "standardized_differences": [
        {"variable": "label", "level": "scratch", "pool": 0.533, "sample": 0.5, "std_diff": -0.07}
    ],
    "diversity": {"sample_mean_nn_distance": 0.41, "random_mean_nn_distance": 0.37, "ratio": 1.11},
}


@lru_cache(maxsize=1)
def _criteria(plan_dir: str) -> dict[str, Any]:
    path = Path(plan_dir) / "report_demo_sap.yaml"
    path.write_text(PLAN_YAML)
    plan, _ = load_plan(path)
    answers = answers_frame()
    data = answers[answers["item_type"] != "free_text"].rename(columns={"item": "measure"})
    report = evaluate_criteria(
        data, plan=plan, repeat="repeat", metrics=metrics_frame(answers), seed=20261126
    )
    return criteria_dict(report)  # as analyze stores it


def report_input(plan_dir: Path, **changes: Any) -> ReportInput:
    """The full ReportInput (every optional part present); ``changes`` replace fields."""
    answers = answers_frame()
    criteria = _criteria(str(plan_dir))
    results = {
        "study": {"id": "report_demo"},
        "plan_hash": "b" * 64,
        "data_digest": "d" * 64,
        "seed": 20261126,
        "unblinded_at": "2026-11-30T09:15:00+00:00",
        "unblinded_by": "lead-1",
        "reason": "rating closed; primary analysis",
        "criteria": criteria,
        "deviations": [
            {
                "kind": "catch_failed",
                "rater": "rater-3",
                "case": "case-4",
                "detail": "attention check answered 1, instructed 5; rater kept (plan: exclude after 2 failures)",
            },
            {
                "kind": "missing_answer",
                "rater": "rater-5",
                "case": "case-17",
                "detail": "no answer to comment (optional item)",
            },
        ],
        "flow": {
            "cases": {
                "pool": 240,
                "eligible": 225,
                "sampled": N_CASES,
                "rated": N_CASES,
                "analysed": N_CASES,
            },
            "raters": {
                "invited": 8,
                "started": 7,
                "completed": N_RATERS,
                "excluded": 1,
                "analysed": N_RATERS,
            },
        },
        "free_text": {
            "comment": answers[answers["item"] == "comment"]
            .groupby("arm")
            .size()
            .astype(int)
            .to_dict()
        },
        "software": {
            "studyhub": "0.1.0",
            "python": "3.11",
            "numpy": np.__version__,
            "platform": "linux",
        },
    }
    use = answers[answers["item"] == "usefulness"]
    mean = use.groupby(["case", "arm"])["value"].mean().rename("mean_rating").reset_index()
    corr = mean.merge(metrics_frame(answers), on=["case", "arm"]).rename(
        columns={"deletion_auc": "metric_value"}
    )
    corr["metric"] = "deletion_auc"
    marks = pd.DataFrame(
        {
            "rater": ["rater-1", "rater-2", "rater-2", "rater-4"],
            "case": ["case-1", "case-1", "case-2", "case-3"],
            "stimulus": ["s0001", "s0002", "s0003", "s0004"],
            "arm": ["ig", "gradcam", "ig", "control"],
            "x": [0.2, 0.5, 0.7, 0.1],
            "y": [0.3, 0.5, 0.2, 0.9],
            "tag": ["correct", "misleading", "correct", "misleading"],
            "region": ["scratch", "background", "scratch", ""],
        }
    )
    cases = cases_frame()
    base = ReportInput(
        study=StudyInfo(
            id="report_demo",
            title="Usefulness of attribution maps for surface inspection",
            design="retrospective, fully crossed",
            registration_hash="a" * 64,
            plan_hash="b" * 64,
            registered_at="2026-10-01T08:00:00+00:00",
            protocol_id="report_demo",
            plan_id="report_demo_sap",
            protocol_hash="c" * 64,
        ),
        results=results,
        answers=answers,
        cases=cases,
        marks=marks,
        amendments=(
            AmendmentRecord(
                1,
                "added a second site's cases to the pool",
                "e" * 64,
                "f" * 64,
                "2026-10-20T10:00:00+00:00",
            ),
        ),
        sampling_report=SAMPLING_REPORT,
        calibration=CalibrationData.from_cases(cases, ece_before=0.112, ece_after=0.041),
        mrmc=mrmc_data(),
        metric_correlation=corr,
        montage=tuple((arm, _png(i)) for i, arm in enumerate(("control", "gradcam", "ig") * 2)),
        environment={
            "python": "3.11.9",
            "platform": "Linux-x86_64",
            "device": "cpu",
            "packages": {"torch": "2.13.0", "matplotlib": "3.11.2"},
        },
    )
    return dataclasses.replace(base, **changes)
