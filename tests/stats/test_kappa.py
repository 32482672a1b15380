"""Tests of studyhub.stats.kappa (Cohen's kappa) against published reference numbers.

Reference data live in tests/data/reference/<folder>/ (CSV, expected.json and
SOURCE.md copied unchanged from the project's reference collection). Every
expected value carries its source in a comment beside the assertion.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats import inter_rater

from studyhub.errors import DataError
from studyhub.stats.kappa import cohen_kappa
from tests.stats.helpers import REFERENCE, case_jackknife, expected, printed, stimuli

# --------------------------------------------------------------------------- Cohen's kappa


@pytest.fixture(scope="module")
def table10() -> pd.DataFrame:
    """The SAS 3x3 table expanded to long data: one row per subject and rater."""
    table = pd.read_csv(REFERENCE / "cohens_kappa_sas_table10" / "table.csv", index_col=0)
    rows: list[tuple[int, str, int]] = []
    subject = 0
    for i, cat1 in enumerate(table.index):
        for j in range(table.shape[1]):
            for _ in range(int(table.to_numpy()[i, j])):
                rows += [(subject, "rater1", int(cat1)), (subject, "rater2", j + 1)]
                subject += 1
    return pd.DataFrame(rows, columns=["subject", "rater", "category"])


def test_cohen_kappa_matches_sas_unweighted(table10: pd.DataFrame) -> None:
    res = cohen_kappa(table10, subjects="subject", raters="rater", ratings="category")
    sas = expected("cohens_kappa_sas_table10")["published_sas_unweighted"]
    assert res.n_subjects == 19
    assert res.table.to_numpy().tolist() == [[0, 4, 1], [0, 8, 0], [0, 1, 5]]
    # SAS PROC FREQ AGREE printout (statsmodels test_inter_rater.py, UnweightedCohens res10_sas),
    # 4 decimals: kappa 0.4842, ASE 0.1380, 95% CI 0.2137-0.7547
    assert printed(res.estimate, sas["kappa"], 4)
    assert printed(res.ase, sas["ase"], 4)
    assert printed(res.ci_low, sas["ci95"][0], 4)
    assert printed(res.ci_high, sas["ci95"][1], 4)
    # SAS (res10_sash0): ASE under H0 0.1484, Z 3.2626, one-sided p 0.0006, two-sided p 0.0011
    assert printed(res.ase_h0, sas["ase_h0"], 4)
    assert printed(res.z, sas["z"], 4)
    assert printed(res.p_value_one_sided, sas["p_one_sided"], 4)
    assert printed(res.p_value, sas["p_two_sided"], 4)


def test_cohen_kappa_matches_sas_linear_weights(table10: pd.DataFrame) -> None:
    res = cohen_kappa(
        table10, subjects="subject", raters="rater", ratings="category", weights="linear"
    )
    sas = expected("cohens_kappa_sas_table10")["published_sas_weighted_linear"]
    # SAS PROC FREQ weighted kappa, Cicchetti-Allison weights (statsmodels test_inter_rater.py,
    # TestWeightedCohens), 4 decimals: kappa 0.4701, ASE 0.1457, 95% CI 0.1845-0.7558
    assert printed(res.estimate, sas["kappa"], 4)
    assert printed(res.ase, sas["ase"], 4)
    assert printed(res.ci_low, sas["ci95"][0], 4)
    assert printed(res.ci_high, sas["ci95"][1], 4)
    # SAS: ASE under H0 0.1426, Z 3.2971, one-sided p 0.0005, two-sided p 0.0010
    assert printed(res.ase_h0, sas["ase_h0"], 4)
    assert printed(res.z, sas["z"], 4)
    assert printed(res.p_value_one_sided, sas["p_one_sided"], 4)
    assert printed(res.p_value, sas["p_two_sided"], 4)


def test_cohen_kappa_matches_crosscheck(table10: pd.DataFrame) -> None:
    cc = expected("cohens_kappa_sas_table10")["crosscheck_computed"]
    kw: dict[str, Any] = {"subjects": "subject", "raters": "rater", "ratings": "category"}
    unweighted = cohen_kappa(table10, **kw)
    linear = cohen_kappa(table10, weights="linear", **kw)
    quadratic = cohen_kappa(table10, weights="quadratic", **kw)
    # expected.json crosscheck_computed (Fleiss-Cohen-Everitt 1969 numpy + statsmodels 0.15.0)
    # unweighted: kappa 0.48416289592760187, ase 0.1380135783, ase_h0 0.1483982819
    assert unweighted.estimate == pytest.approx(cc["unweighted"]["kappa"], abs=1e-12)
    assert printed(unweighted.ase, cc["unweighted"]["ase"], 10)
    assert printed(unweighted.ase_h0, cc["unweighted"]["ase_h0"], 10)
    # linear: kappa 0.4701195219123506, ase 0.1457460451, ase_h0 0.1425850776
    assert linear.estimate == pytest.approx(cc["linear"]["kappa"], abs=1e-12)
    assert printed(linear.ase, cc["linear"]["ase"], 10)
    assert printed(linear.ase_h0, cc["linear"]["ase_h0"], 10)
    # quadratic (computed, not published): kappa 0.4501607717041801, ase 0.1922326634,
    # ase_h0 0.1879194683, CI 0.073392-0.826930, z 2.3955
    q = cc["quadratic_not_published"]
    assert quadratic.estimate == pytest.approx(q["kappa"], abs=1e-12)
    assert printed(quadratic.ase, q["ase"], 10)
    assert printed(quadratic.ase_h0, q["ase_h0"], 10)
    assert printed(quadratic.ci_low, q["ci95"][0], 6)
    assert printed(quadratic.ci_high, q["ci95"][1], 6)
    assert printed(quadratic.z, q["z"], 4)


@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
def test_cohen_kappa_agrees_with_statsmodels_on_random_data(weights: Any) -> None:
    rng = np.random.default_rng(11)
    a = rng.integers(1, 6, 80)
    b = np.clip(a + rng.integers(-1, 2, 80), 1, 5)
    data = pd.DataFrame(
        {"s": np.tile(np.arange(80), 2), "r": np.repeat(["x", "y"], 80), "y": np.r_[a, b]}
    )
    res = cohen_kappa(data, subjects="s", raters="r", ratings="y", weights=weights)
    table = pd.crosstab(a, b).reindex(index=range(1, 6), columns=range(1, 6), fill_value=0)
    sm = inter_rater.cohens_kappa(table.to_numpy(), wt=weights)
    assert res.estimate == pytest.approx(sm.kappa, abs=1e-12)
    assert res.ase == pytest.approx(sm.std_kappa, abs=1e-12)
    assert res.ase_h0 == pytest.approx(sm.std_kappa0, abs=1e-12)


def test_cohen_kappa_uses_category_values_as_scores() -> None:
    # Unequally spaced numeric categories: linear weights use the values (SAS default).
    pairs = [(0, 1), (1, 10), (10, 10), (0, 0), (1, 1), (1, 0), (10, 1), (0, 0)]
    data = pd.DataFrame(
        [(s, r, v) for s, pair in enumerate(pairs) for r, v in zip("ab", pair, strict=True)],
        columns=["s", "r", "y"],
    )
    res = cohen_kappa(data, subjects="s", raters="r", ratings="y", weights="linear")
    assert res.categories == [0, 1, 10]
    with_scale = cohen_kappa(
        data, subjects="s", raters="r", ratings="y", weights="linear", categories=[0, 1, 10, 20]
    )
    assert with_scale.table.shape == (4, 4)
    assert with_scale.estimate == pytest.approx(res.estimate)  # weighted kappa is scale-free
    ranks = cohen_kappa(
        data.assign(y=data["y"].map({0: 0, 1: 1, 10: 2})),
        subjects="s",
        raters="r",
        ratings="y",
        weights="linear",
    )
    assert ranks.estimate != pytest.approx(res.estimate)  # spacing 0-1-10 is not 0-1-2


def test_cohen_kappa_errors(table10: pd.DataFrame) -> None:
    kw: dict[str, Any] = {"subjects": "subject", "raters": "rater", "ratings": "category"}
    three = pd.concat(
        [table10, table10[table10["rater"] == "rater1"].assign(rater="rater3")],
        ignore_index=True,
    )
    with pytest.raises(
        DataError,
        match=r"raters column 'rater' has 3 distinct values \(\['rater1', 'rater2', 'rater3'\]\); "
        r"Cohen's kappa needs exactly 2 raters; use fleiss_kappa or krippendorff_alpha",
    ):
        cohen_kappa(three, **kw)
    with pytest.raises(
        DataError,
        match=r"raters column 'rater' has 1 distinct value\(s\) \(\['rater1'\]\); "
        r"this analysis needs at least 2",
    ):
        cohen_kappa(table10[table10["rater"] == "rater1"], **kw)
    with pytest.raises(
        DataError,
        match=r"1 subject\(s\) are rated by only one of the two raters \(e.g. subject=0\); "
        r"Cohen's kappa needs paired ratings",
    ):
        cohen_kappa(table10.iloc[1:], **kw)
    with pytest.raises(DataError, match=r"ratings column 'category' has 1 distinct value\(s\)"):
        cohen_kappa(table10.assign(category=2), **kw)
    with pytest.raises(DataError, match=r"weights is 'cubic'; pass None \(unweighted\)"):
        cohen_kappa(table10, weights="cubic", **kw)  # type: ignore[arg-type]
    with pytest.raises(DataError, match=r"value\(s\) \[3\] that are not in categories=\[1, 2\]"):
        cohen_kappa(table10, categories=[1, 2], **kw)
    with pytest.raises(DataError, match=r"confidence is 95; pass a level strictly between 0"):
        cohen_kappa(table10, confidence=95, **kw)


def test_cohen_cluster_interval_leaves_out_each_case() -> None:
    # Subjects are stimuli (a case under one arm): the interval leaves out one case
    # at a time on the atanh scale; the estimate and the z test are unchanged.
    data = stimuli(np.random.default_rng(6), n_raters=2, n_cases=20)
    kw: dict[str, Any] = {"subjects": "unit", "raters": "rater", "ratings": "value"}
    res = cohen_kappa(data, **kw, weights="linear", clusters="case")
    plain = cohen_kappa(data, **kw, weights="linear")
    assert (res.interval, res.n_clusters) == ("cluster jackknife", 20)
    assert plain.interval == "asymptotic"
    assert (res.estimate, res.z, res.p_value) == (plain.estimate, plain.z, plain.p_value)
    cats = sorted(data["value"].unique())
    low, high = case_jackknife(
        data,
        lambda d: cohen_kappa(d, **kw, weights="linear", categories=cats).estimate,
        raters=2,
    )
    assert (res.ci_low, res.ci_high) == (pytest.approx(low), pytest.approx(high))


def test_cohen_cluster_errors() -> None:
    data = stimuli(np.random.default_rng(7), n_raters=2, n_cases=8)
    kw: dict[str, Any] = {"subjects": "unit", "raters": "rater", "ratings": "value"}
    data.loc[1, "case"] = "c999"
    with pytest.raises(DataError) as info:
        cohen_kappa(data, **kw, clusters="case")
    assert str(info.value) == (
        "unit='c000|a' lies in 2 clusters (['c000', 'c999']); each unit must belong to one "
        "cluster of column 'case'"
    )
