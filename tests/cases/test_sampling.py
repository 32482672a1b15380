"""Sampling: quotas, enrichment, k-center diversity, reproducibility, the report's figures."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from studyhub.cases.sampling import (
    diversity_figure,
    draw_sample,
    k_center_greedy,
    sample_problems,
    standardized_differences,
)
from studyhub.errors import DataError
from studyhub.protocol.schema import Sampling


def _pool(n: int = 400, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.choice(["none", "crack", "scratch", "pit"], size=n, p=[0.4, 0.2, 0.2, 0.2])
    frame = pd.DataFrame(
        {
            "key": [f"c{i:04d}" for i in range(n)],
            "label": labels,
            "correct": rng.random(n) > 0.15,
            "confidence": rng.uniform(0.3, 1.0, n),
            "line": rng.choice(["A", "B", "C"], size=n),
            "lighting": rng.choice(["bright", "dim"], size=n),
        }
    )
    # a skewed cloud where every case has a near-duplicate (a re-shot of the same part)
    base = rng.normal(0, 1, size=(n // 2, 16)) * np.linspace(3, 0.5, 16)
    emb = np.repeat(base, 2, axis=0)[:n] + rng.normal(0, 0.01, size=(n, 16))
    return frame, emb


def _plan(**kw: object) -> Sampling:
    base: dict[str, object] = {"n_cases": 40}
    base.update(kw)
    return Sampling.model_validate(base)


def test_same_seed_same_cases_and_other_seed_differs() -> None:
    pool, emb = _pool()
    plan = _plan(
        stratify={"by": ["label"], "quotas": {"none": 10, "crack": 10, "scratch": 10, "pit": 10}}
    )
    a = draw_sample(pool, emb, plan, seed=7)
    b = draw_sample(pool, emb, plan, seed=7)
    c = draw_sample(pool, emb, plan, seed=8)
    assert a.rows == b.rows
    assert a.rows != c.rows


def test_quotas_are_met_exactly() -> None:
    pool, emb = _pool()
    quotas = {"none": 16, "crack": 8, "scratch": 8, "pit": 8}
    draw = draw_sample(pool, emb, _plan(stratify={"by": ["label"], "quotas": quotas}), seed=1)
    got = pool.loc[draw.rows, "label"].value_counts().to_dict()
    assert got == quotas
    assert len(set(draw.rows)) == 40


def test_two_way_strata_quotas() -> None:
    pool, emb = _pool()
    quotas = {"crack|error": 2, "crack|correct": 8, "none|correct": 10}
    draw = draw_sample(
        pool,
        emb,
        _plan(n_cases=20, stratify={"by": ["label", "correctness"], "quotas": quotas}),
        seed=3,
    )
    sample = pool.loc[draw.rows]
    key = sample["label"] + "|" + sample["correct"].map({True: "correct", False: "error"})
    assert key.value_counts().to_dict() == quotas


def test_proportional_allocation_by_largest_remainder() -> None:
    pool, emb = _pool()
    draw = draw_sample(pool, emb, _plan(n_cases=37, stratify={"by": ["line"]}), seed=0)
    counts = pool["line"].value_counts()
    exact = counts / counts.sum() * 37
    got = pool.loc[draw.rows, "line"].value_counts()
    assert got.sum() == 37
    assert ((got - exact).abs() < 1).all()


def test_unmeetable_quota_names_the_stratum_and_counts() -> None:
    pool, emb = _pool(n=60)
    have = int((pool["label"] == "pit").sum())
    plan = _plan(
        n_cases=30 + have + 1,
        stratify={
            "by": ["label"],
            "quotas": {"none": 10, "crack": 10, "scratch": 10, "pit": have + 1},
        },
    )
    with pytest.raises(
        DataError,
        match=rf"stratum 'pit' needs {have + 1} but only {have} eligible cases exist; lower",
    ):
        draw_sample(pool, emb, plan, seed=0)


def test_quotas_must_sum_to_n_cases() -> None:
    pool, emb = _pool()
    with pytest.raises(DataError, match=r"quotas add up to 30 but sampling\.n_cases is 40"):
        draw_sample(
            pool,
            emb,
            _plan(stratify={"by": ["label"], "quotas": {"none": 10, "crack": 20}}),
            seed=0,
        )


def test_too_few_eligible_cases() -> None:
    pool, emb = _pool(n=30)
    with pytest.raises(DataError, match="n_cases is 40 but only 30 eligible cases exist"):
        draw_sample(pool, emb, _plan(), seed=0)


def test_unknown_stratum_column() -> None:
    pool, emb = _pool()
    with pytest.raises(DataError, match="names 'scanner', which is neither"):
        draw_sample(pool, emb, _plan(stratify={"by": ["scanner"]}), seed=0)


def test_enrichment_keeps_the_planned_shares_of_errors_and_low_confidence() -> None:
    pool, emb = _pool()
    plan = _plan(
        stratify={"by": ["label"], "quotas": {"none": 10, "crack": 10, "scratch": 10, "pit": 10}},
        enrich={"errors": 0.3, "low_confidence": 0.25, "low_confidence_below": 0.5},
    )
    draw = draw_sample(pool, emb, plan, seed=2)
    sample = pool.loc[draw.rows]
    assert int((~sample["correct"]).sum()) == 12  # 0.3 x 40, not "at least"
    assert int((sample["confidence"] < 0.5).sum()) == 10  # 0.25 x 40
    base_rate = (~pool["correct"]).mean()
    assert base_rate < 0.2  # so the enrichment is real
    errors = draw.enrichment["errors"]
    assert (errors["planned_count"], errors["count"], errors["achieved_share"]) == (12, 12, 0.3)
    assert sum(errors["by_stratum"].values()) == 12
    assert errors["by_stratum"] == {
        label: int((~sample.loc[sample["label"] == label, "correct"]).sum())
        for label in ("crack", "none", "pit", "scratch")
    }
    assert draw.notes == []


def test_enrichment_the_pool_cannot_give_is_refused_with_the_counts_and_fix() -> None:
    pool, emb = _pool()
    pool["correct"] = True
    pool.loc[pool.index[:3], "correct"] = False
    plan = _plan(enrich={"errors": 0.5})
    message = (
        "sampling.enrich.errors is 0.5, i.e. 20 of the 40 cases (within one), but at most 3 "
        "misclassified cases can be drawn: the eligible pool holds only 3; lower "
        "sampling.enrich.errors to at most 0.075 (3 of 40), or add misclassified cases to the "
        "pool (widen sampling.eligibility)"
    )
    with pytest.raises(DataError) as info:
        draw_sample(pool, emb, plan, seed=0)
    assert str(info.value) == message
    assert sample_problems(pool, plan) == [message]


def test_infeasible_enrichment_in_strata_names_them() -> None:
    pool, emb = _pool()
    pool["correct"] = True
    for label, count in {"crack": 2, "pit": 1, "none": 15, "scratch": 12}.items():
        pool.loc[pool.index[pool["label"] == label][:count], "correct"] = False
    quotas = {"none": 10, "crack": 10, "scratch": 10, "pit": 10}
    plan = _plan(stratify={"by": ["label"], "quotas": quotas}, enrich={"errors": 0.75})
    message = (
        "sampling.enrich.errors is 0.75, i.e. 30 of the 40 cases (within one), but at most 23 "
        "misclassified cases can be drawn: under the stratum quotas, stratum 'crack' holds 2 "
        "misclassified cases for its quota of 10, stratum 'pit' holds 1 misclassified case for "
        "its quota of 10 (every other stratum can fill its whole quota with them); lower "
        "sampling.enrich.errors to at most 0.575 (23 of 40), or raise the quotas of the strata "
        "that hold more ('none' holds 15 for a quota of 10, 'scratch' holds 12 for a quota of "
        "10) or add misclassified cases to the pool"
    )
    with pytest.raises(DataError) as info:
        draw_sample(pool, emb, plan, seed=0)
    assert str(info.value) == message
    # the share it names can be drawn, exactly
    ok = plan.model_copy(update={"enrich": plan.enrich.model_copy(update={"errors": 0.575})})
    sample = pool.loc[draw_sample(pool, emb, ok, seed=0).rows]
    assert int((~sample["correct"]).sum()) == 23


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    "design",
    [
        {},  # unstratified
        {"stratify": {"by": ["label"]}},  # proportional allocation
        {"stratify": {"by": ["label", "line"]}},
        {
            "stratify": {
                "by": ["label"],
                "quotas": {"none": 16, "crack": 8, "scratch": 8, "pit": 8},
            }
        },
        {"stratify": {"by": ["lighting"], "quotas": {"bright": 30, "dim": 10}}},
    ],
)
@pytest.mark.parametrize("diversity", ["k_center", "none"])
@pytest.mark.parametrize(
    ("errors", "low"), [(0.2, 0.0), (0.0, 0.1), (0.2, 0.1), (0.35, 0.3), (0.05, 0.45)]
)
def test_achieved_counts_are_the_plan_on_feasible_pools(
    seed: int, design: dict[str, object], diversity: str, errors: float, low: float
) -> None:
    pool, emb = _pool(seed=seed)
    n = 40
    plan = _plan(
        n_cases=n,
        diversity=diversity,
        enrich={"errors": errors, "low_confidence": low, "low_confidence_below": 0.5},
        **design,
    )
    draw = draw_sample(pool, emb, plan, seed=seed)
    sample = pool.loc[draw.rows]
    assert len(set(draw.rows)) == n
    if errors:
        assert int((~sample["correct"]).sum()) == round(errors * n)
    if low:
        assert int((sample["confidence"] < 0.5).sum()) == round(low * n)
    assert draw.notes == []
    # the quotas stay exact with the targets
    got = draw.strata.loc[draw.rows].value_counts().to_dict()
    assert got == draw.quotas


def test_a_target_that_contradicts_correctness_strata_is_refused() -> None:
    # proportional allocation over correctness fixes the errors at the pool's rate (about
    # 12 %, 5 of 40), so a target of 0.2 cannot be met: the message names the strata
    pool, emb = _pool()
    plan = _plan(stratify={"by": ["lighting", "correctness"]}, enrich={"errors": 0.2})
    quotas = draw_sample(pool, emb, _plan(stratify=plan.stratify), seed=0).quotas
    errors = sum(q for s, q in quotas.items() if s.endswith("|error"))
    assert errors < 7
    with pytest.raises(DataError) as info:
        draw_sample(pool, emb, plan, seed=0)
    message = str(info.value)
    assert message.startswith(
        "sampling.enrich.errors is 0.2, i.e. 8 of the 40 cases (within one), but at most "
        f"{errors} misclassified cases can be drawn: under the stratum quotas, stratum "
        f"'bright|correct' holds 0 misclassified cases for its quota of {quotas['bright|correct']}"
    )
    assert f"lower sampling.enrich.errors to at most {errors / 40:g} ({errors} of 40)" in message


def test_the_issue_sample_keeps_its_share_stratified_by_site_and_label() -> None:
    """A 40-case sample with enrich.errors 0.2 held 45 % errors (site x label) and 25 %
    unstratified; it now holds 8 of 40 either way."""
    rng = np.random.default_rng(4)
    pool, emb = _pool(n=600, seed=4)
    pool["site"] = rng.choice(["north", "south", "east"], size=len(pool))
    # errors cluster in the embedding's far tail, where k-center reaches first
    far = np.linalg.norm(emb, axis=1)
    pool["correct"] = far < np.quantile(far, 0.85)
    for design in ({"stratify": {"by": ["site", "label"]}}, {}):
        plan = _plan(enrich={"errors": 0.2}, **design)
        sample = pool.loc[draw_sample(pool, emb, plan, seed=9).rows]
        assert int((~sample["correct"]).sum()) == 8
        plain = _plan(**design)
        unplanned = pool.loc[draw_sample(pool, emb, plain, seed=9).rows]
        assert int((~unplanned["correct"]).sum()) > 8  # what diversity alone draws


def test_same_seed_same_cases_with_every_constraint() -> None:
    pool, emb = _pool()
    plan = _plan(
        stratify={"by": ["label", "lighting"]},
        enrich={"errors": 0.2, "low_confidence": 0.1},
    )
    a = draw_sample(pool, emb, plan, seed=7)
    assert a.rows == draw_sample(pool, emb, plan, seed=7).rows
    assert a.rows != draw_sample(pool, emb, plan, seed=8).rows
    none = plan.model_copy(update={"diversity": "none"})
    b = draw_sample(pool, emb, none, seed=7)
    assert b.rows == draw_sample(pool, emb, none, seed=7).rows
    assert b.rows != draw_sample(pool, emb, none, seed=8).rows


def test_without_quotas_or_targets_the_draw_is_k_center_greedy_over_the_pool() -> None:
    pool, emb = _pool()
    draw = draw_sample(pool, emb, _plan(), seed=3)
    plain = k_center_greedy(emb, np.arange(len(pool)), 40, rng=np.random.default_rng(3))
    assert draw.rows == plain.tolist()


def test_k_center_greedy_hand_computed() -> None:
    points = np.array([[0.0], [1.0], [2.0], [10.0], [10.5]])
    rng = np.random.default_rng(0)
    # with row 0 already chosen: farthest is 10.5 (row 4), then 2.0 is 2 from 0 and 8.5 from 10.5 -> row 2
    picked = k_center_greedy(points, np.arange(5), 2, chosen=np.array([0]), rng=rng)
    assert picked.tolist() == [4, 2]


@pytest.mark.parametrize(
    "constraints",
    [
        {},
        {
            "stratify": {"by": ["label", "lighting"]},
            "enrich": {"errors": 0.2, "low_confidence": 0.1},
        },
    ],
)
def test_diversity_beats_random_sampling(constraints: dict[str, object]) -> None:
    pool, emb = _pool()
    draw = draw_sample(pool, emb, _plan(**constraints), seed=5)
    rows = np.asarray(draw.rows)
    fig = diversity_figure(emb, rows, seed=5)
    assert fig["sample_mean_nn_distance"] > fig["random_mean_nn_distance"]
    assert fig["ratio"] > 1.2
    assert fig["sample_coverage_radius"] < fig["random_coverage_radius"]
    plain = draw_sample(pool, emb, _plan(diversity="none", **constraints), seed=5)
    assert diversity_figure(emb, np.asarray(plain.rows), seed=5)["ratio"] < fig["ratio"]


def test_standardized_differences_hand_computed() -> None:
    pool = pd.DataFrame({"x": [0.0, 0.0, 1.0, 1.0], "site": ["a", "a", "b", "b"]})
    sample = pd.DataFrame({"x": [1.0, 1.0, 1.0, 0.0], "site": ["a", "b", "b", "b"]})
    table = standardized_differences(pool, sample, ["x", "site"])
    # x: means 0.75 vs 0.5; variances 0.25 and 1/3 -> d = 0.25 / sqrt((0.25 + 1/3) / 2)
    d_x = table.loc[table.variable == "x", "std_diff"].item()
    assert d_x == pytest.approx(0.25 / np.sqrt((0.25 + 1 / 3) / 2))
    # site=a: 0.25 vs 0.5 -> (0.25 - 0.5) / sqrt((0.25*0.75 + 0.5*0.5) / 2)
    d_a = table.loc[(table.variable == "site") & (table.level == "a"), "std_diff"].item()
    assert d_a == pytest.approx(-0.25 / np.sqrt((0.1875 + 0.25) / 2))


def test_missing_categorical_values_are_a_level_of_their_own() -> None:
    # A PNG beside DICOM files has no modality: 2 of 4 pool cases, 1 of 2 sampled ones.
    pool = pd.DataFrame({"modality": ["CT", None, "MR", None]})
    sample = pd.DataFrame({"modality": ["CT", None]})
    table = standardized_differences(pool, sample, ["modality"]).set_index("level")
    assert list(table.index) == ["(missing)", "CT", "MR"]
    assert table.loc["(missing)", "pool"] == 0.5 and table.loc["(missing)", "sample"] == 0.5
    # CT: pool 1/4, sample 1/2 -> (0.5 - 0.25) / sqrt((0.25 * 0.75 + 0.5 * 0.5) / 2)
    assert table.loc["CT", "std_diff"] == pytest.approx(0.25 / math.sqrt((0.1875 + 0.25) / 2))


def test_sample_problems_lists_every_reason_draw_sample_would_refuse() -> None:
    pool, emb = _pool()
    plan = _plan(
        stratify={"by": ["label"], "quotas": {"none": 10, "crack": 10, "scratch": 500}},
    )
    problems = sample_problems(pool, plan)
    assert len(problems) == 2
    assert "quotas add up to 520 but sampling.n_cases is 40" in problems[0]
    assert "stratum 'scratch' needs 500 but only" in problems[1]
    with pytest.raises(DataError) as info:  # the sample path refuses with the first of them
        draw_sample(pool, emb, plan, seed=0)
    assert str(info.value) == problems[0]
    good = _plan(stratify={"by": ["label"]})
    assert sample_problems(pool, good) == []
    assert (
        "neither a built-in stratum"
        in sample_problems(pool, _plan(stratify={"by": ["label", "shift"]}))[0]
    )
    assert sample_problems(pool.iloc[:0], good) == [
        "no eligible cases in the pool; widen eligibility or check the data source"
    ]
    assert sample_problems(pool.iloc[:30], _plan()) == [
        "sampling.n_cases is 40 but only 30 eligible cases exist; lower n_cases or widen "
        "eligibility"
    ]


def test_sample_problems_needs_no_model_columns_for_metadata_strata() -> None:
    pool, _emb = _pool()
    plain = pool.drop(columns=["correct", "confidence"])
    plan = _plan(stratify={"by": ["label", "lighting"]})
    assert sample_problems(plain, plan) == []
    # enrichment targets need the predictions: without them they are left to the caller
    few = pool.iloc[:120]  # about 18 errors
    assert sample_problems(plain.iloc[:120], _plan(enrich={"errors": 0.9})) == []
    assert sample_problems(few, _plan(enrich={"errors": 0.9}))[0].startswith(
        "sampling.enrich.errors is 0.9, i.e. 36 of the 40 cases (within one), but at most"
    )
