"""Every item type through a registered plan, from the store: a reader_diagnosis study.

Scripted raters (``studyhub.demo.raters``) answer a diagnosis item (class and
confidence), a single-choice item and a Likert item through the service layer;
``analyze`` evaluates an MRMC endpoint, a kappa on the single-choice answers and
an accuracy endpoint; the MRMC result equals ``studyhub stats mrmc`` on the
exported CSV.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from studyhub.demo.raters import simulate_ratings
from studyhub.evidence.analyze import analyze_study
from tests.evidence.conftest import STUDY, Rated

ITEMS = """  items:
    - id: diagnosis
      type: diagnosis
      prompt: Which defect does the surface show, and how sure are you?
    - id: finding
      type: single_choice
      prompt: Which defect class is present on the surface?
      choices: [none, crack, scratch, pit]
    - id: usefulness
      type: likert
      prompt: How useful is the highlight for your decision?
      scale_min: 1
      scale_max: 5
"""

PLAN = """id: inspection_demo_sap
protocol: inspection_demo
alpha: 0.05
confidence: 0.95
multiplicity: holm
endpoints:
  - id: auc_ig_vs_random
    primary: true
    description: Reader AUC for defects with integrated-gradients maps versus random maps
    measure: auc
    statistic: mrmc
    comparison: {arm: ig, versus: random_map}
    hypothesis: {type: superiority}
    success_criterion: The reader-averaged AUC with ig exceeds that with random_map (OR, Hillis df).
    options: {item: diagnosis}
  - id: finding_accuracy
    description: Share of correct defect classes over all arms
    measure: finding
    statistic: accuracy
    hypothesis: {type: proportion, threshold: 0.4}
    success_criterion: The lower 95% confidence limit of the share of correct findings is above 0.4.
  - id: finding_agreement
    description: Agreement of raters on the defect class
    measure: finding
    statistic: fleiss_kappa
    hypothesis: {type: agreement, threshold: 0.2}
    success_criterion: The lower 95% confidence limit of Fleiss' kappa on the findings is at least 0.2.
"""


def _reader_study(demo_copy: Path) -> None:
    text = demo_copy.read_text()
    text = text.replace("task: rate_explanation", "task: reader_diagnosis")
    start = text.index("  items:\n")
    end = text.index("\nraters:")
    demo_copy.write_text(text[:start] + ITEMS + text[end:])
    (demo_copy.parent.parent / "analysis" / "inspection_demo.yaml").write_text(PLAN)


def _simulate(store, tokens):  # type: ignore[no-untyped-def]
    return simulate_ratings(
        store,
        STUDY,
        seed=3,
        tokens=tokens,
        accuracy={"ig": 0.85, "gradcam": 0.8, "random_map": 0.45, "randomized_model": 0.5},
    )


def test_reader_diagnosis_endpoints_run_from_the_store_and_match_stats_mrmc(
    make_rated: Callable[..., Rated], demo_copy: Path, cli, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    _reader_study(demo_copy)
    r = make_rated(n_cases=12, rate=_simulate)
    results = analyze_study(r.store, None, actor="lead", reason="primary").results
    got = {e["endpoint"]: e for e in results["criteria"]["results"]}
    assert {k: v["verdict"] for k, v in got.items()} == {
        "auc_ig_vs_random": "PASS",
        "finding_accuracy": "PASS",
        "finding_agreement": got["finding_agreement"]["verdict"],
    }
    assert got["finding_agreement"]["verdict"] in ("PASS", "FAIL")
    assert got["finding_agreement"]["estimate"] is not None
    assert 0.4 < got["finding_accuracy"]["estimate"] < 1

    # the same MRMC analysis by `studyhub stats mrmc` on the exported CSV
    export = tmp_path / "export"
    assert cli("--db", r.store.url, "export", "--out", str(export)).exit_code == 0
    answers = pd.read_csv(export / "answers.csv")
    cases = pd.read_csv(export / "cases.csv")
    diag = answers[(answers["item"] == "diagnosis") & (answers["kind"] == "read")]
    diag = diag.merge(cases[["case", "truth"]], on="case")
    csv = tmp_path / "diagnoses.csv"
    diag.to_csv(csv, index=False)
    res = cli(
        "stats", "mrmc", str(csv), "--reader", "rater", "--modality", "arm",
        "--rating", "value", "--label", "label", "--positive", "crack,scratch,pit", "--json",
    )  # fmt: skip
    assert res.exit_code == 0, res.stderr
    direct = json.loads(res.stdout)
    diffs = direct["rrrc"]["differences"]
    row = next(d for d in diffs if {d["modality_a"], d["modality_b"]} == {"ig", "random_map"})
    sign = 1 if row["modality_a"] == "ig" else -1
    assert sign * row["estimate"] == got["auc_ig_vs_random"]["estimate"]
    assert re.search(r"ddf", json.dumps(got["auc_ig_vs_random"]["details"]))
