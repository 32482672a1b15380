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


def test_enrichment_reaches_target_share_of_errors_and_low_confidence() -> None:
    pool, emb = _pool()
    plan = _plan(
        stratify={"by": ["label"], "quotas": {"none": 10, "crack": 10, "scratch": 10, "pit": 10}},
        enrich={"errors": 0.3, "low_confidence": 0.25, "low_confidence_below": 0.5},
    )
    draw = draw_sample(pool, emb, plan, seed=2)
    sample = pool.loc[draw.rows]
    assert (~sample["correct"]).mean() >= 0.3
    assert (sample["confidence"] < 0.5).mean() >= 0.25
    base_rate = (~pool["correct"]).mean()
    assert base_rate < 0.2  # so the enrichment is real
    assert draw.enrichment["errors"]["achieved_share"] >= 0.3
    assert draw.notes == []


def test_enrichment_shortfall_is_explained() -> None:
    pool, emb = _pool()
    pool["correct"] = True
    pool.loc[pool.index[:3], "correct"] = False
    draw = draw_sample(pool, emb, _plan(enrich={"errors": 0.5}), seed=0)
    assert any("reached 3 of 20" in note and "pool holds only 3" in note for note in draw.notes)


def test_k_center_greedy_hand_computed() -> None:
    points = np.array([[0.0], [1.0], [2.0], [10.0], [10.5]])
    rng = np.random.default_rng(0)
    # with row 0 already chosen: farthest is 10.5 (row 4), then 2.0 is 2 from 0 and 8.5 from 10.5 -> row 2
    picked = k_center_greedy(points, np.arange(5), 2, chosen=np.array([0]), rng=rng)
    assert picked.tolist() == [4, 2]


def test_diversity_beats_random_sampling() -> None:
    pool, emb = _pool()
    draw = draw_sample(pool, emb, _plan(), seed=5)
    rows = np.asarray(draw.rows)
    fig = diversity_figure(emb, rows, seed=5)
    assert fig["sample_mean_nn_distance"] > fig["random_mean_nn_distance"]
    assert fig["ratio"] > 1.2
    assert fig["sample_coverage_radius"] < fig["random_coverage_radius"]
    plain = draw_sample(pool, emb, _plan(diversity="none"), seed=5)
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
    from studyhub.cases.sampling import sample_problems

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
    from studyhub.cases.sampling import sample_problems

    pool, _emb = _pool()
    plain = pool.drop(columns=["correct", "confidence"])
    plan = _plan(stratify={"by": ["label", "lighting"]})
    assert sample_problems(plain, plan) == []
