"""Tests of studyhub.stats.icc against published reference numbers.

Reference data live in tests/data/reference/<folder>/ (CSV, expected.json and
SOURCE.md copied unchanged from the project's reference collection). Every
expected value carries its source in a comment beside the assertion.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pingouin
import pytest

from studyhub.errors import DataError
from studyhub.stats._agreement_common import multinomial_weights
from studyhub.stats.icc import _icc_from_matrix, _icc_resampled, icc
from tests.stats.helpers import REFERENCE, RaterPanel, case_jackknife, expected, printed, stimuli

FORMS = ["ICC1", "ICC2", "ICC3", "ICC1k", "ICC2k", "ICC3k"]


@pytest.fixture(scope="module")
def sf_data() -> pd.DataFrame:
    return pd.read_csv(REFERENCE / "icc_shrout_fleiss_1979" / "ratings_long.csv")


def test_icc_matches_shrout_fleiss_1979_table4(sf_data: pd.DataFrame) -> None:
    res = icc(sf_data, targets="target", raters="judge", ratings="rating")
    paper = expected("icc_shrout_fleiss_1979")["published_shrout_fleiss_1979"]
    # Shrout & Fleiss (1979) Psychol Bull 86:420-428, Table 4, printed to 2 decimals:
    # ICC(1,1) .17, ICC(2,1) .29, ICC(3,1) .71, ICC(1,k) .44, ICC(2,k) .62, ICC(3,k) .91
    for form, key in [
        ("ICC1", "ICC_1_1"),
        ("ICC2", "ICC_2_1"),
        ("ICC3", "ICC_3_1"),
        ("ICC1k", "ICC_1_k"),
        ("ICC2k", "ICC_2_k"),
        ("ICC3k", "ICC_3_k"),
    ]:
        assert printed(res.form(form).estimate, paper[key], 2), form
    # Shrout & Fleiss (1979) Table 3 mean squares, 2 decimals: BMS 11.24, WMS 6.26, JMS 32.49,
    # EMS 1.02
    for name in ["BMS", "WMS", "JMS", "EMS"]:
        assert printed(res.mean_squares[name], paper["anova_mean_squares_table3"][name], 2)


def test_icc_matches_r_psych(sf_data: pd.DataFrame) -> None:
    res = icc(sf_data, targets="target", raters="judge", ratings="rating")
    ref = expected("icc_shrout_fleiss_1979")["reference_implementation_psych_ICC"]
    assert res.n_targets == 6 and res.n_raters == 4
    for form in FORMS:
        row = res.form(form)
        exp = ref[form]
        # R psych 2.2.9 ICC(sf, lmer=FALSE) (expected.json "reference_implementation_psych_ICC")
        assert row.estimate == pytest.approx(exp["icc"], abs=1e-6), form
        assert row.f_value == pytest.approx(exp["F"], abs=1e-4), form  # psych F, 1e-4
        assert (row.df1, row.df2) == (exp["df1"], exp["df2"]), form  # psych df1, df2
        assert row.p_value == pytest.approx(exp["p"], rel=1e-6, abs=1e-9), form  # psych p
        assert row.ci_low == pytest.approx(exp["ci95"][0], abs=1e-4), form  # psych lower bound
        assert row.ci_high == pytest.approx(exp["ci95"][1], abs=1e-4), form  # psych upper bound
    # R psych 2.2.9 ANOVA (5 decimals): MS_targets 11.24167, MS_judges 32.48611,
    # MS_residual 1.01944, MS_within 6.263888889
    anova = ref["anova"]
    assert printed(res.mean_squares["BMS"], anova["MS_targets"], 5)
    assert printed(res.mean_squares["JMS"], anova["MS_judges"], 5)
    assert printed(res.mean_squares["EMS"], anova["MS_residual"], 5)
    assert res.mean_squares["WMS"] == pytest.approx(anova["MS_within_oneway"], abs=1e-9)
    # psych's sums of squares: SS = MS * df (SS_targets 56.20833, SS_judges 97.45833,
    # SS_residual 15.29167)
    assert printed(res.mean_squares["BMS"] * anova["df_targets"], anova["SS_targets"], 5)
    assert printed(res.mean_squares["JMS"] * anova["df_judges"], anova["SS_judges"], 5)
    assert printed(res.mean_squares["EMS"] * anova["df_residual"], anova["SS_residual"], 5)


def test_icc_agrees_with_pingouin(sf_data: pd.DataFrame) -> None:
    res = icc(sf_data, targets="target", raters="judge", ratings="rating")
    pg = pingouin.intraclass_corr(sf_data, targets="target", raters="judge", ratings="rating")
    np.testing.assert_allclose(res.table["estimate"], pg["ICC"], atol=1e-10)
    np.testing.assert_allclose(res.table["F"], pg["F"], atol=1e-10)
    np.testing.assert_allclose(res.table["p_value"], pg["pval"], atol=1e-12)


def test_icc_form_aliases_and_table(sf_data: pd.DataFrame) -> None:
    res = icc(sf_data, targets="target", raters="judge", ratings="rating", confidence=0.9)
    assert list(res.table.index) == FORMS
    assert {"estimate", "F", "df1", "df2", "p_value", "ci_low", "ci_high"} <= set(res.table)
    assert res.form("ICC(A,1)") == res.form("ICC2") == res.form("icc(2,1)")
    assert res.form("ICC(C,k)").estimate == res.form("ICC3k").estimate
    narrower = res.form("ICC3")
    wider = icc(sf_data, targets="target", raters="judge", ratings="rating").form("ICC3")
    assert wider.ci_low < narrower.ci_low < narrower.ci_high < wider.ci_high
    with pytest.raises(DataError, match=r"unknown ICC form 'ICC4'; pass one of"):
        res.form("ICC4")


def test_icc_refuses_unbalanced_data(sf_data: pd.DataFrame) -> None:
    unbalanced = sf_data.drop(index=5)  # target 2, judge 2
    with pytest.raises(
        DataError,
        match=r"the ICC needs balanced data \(every target rated by every rater\), but 1 of 24 "
        r"target x rater cells are empty \(e.g. target=2, judge=2\); drop incomplete targets",
    ):
        icc(unbalanced, targets="target", raters="judge", ratings="rating")
    with_nan = sf_data.assign(rating=sf_data["rating"].where(sf_data.index != 5))
    with pytest.raises(DataError, match="the ICC needs balanced data"):
        icc(with_nan, targets="target", raters="judge", ratings="rating")


def test_icc_refuses_one_rater_constant_missing_column_and_duplicates(
    sf_data: pd.DataFrame,
) -> None:
    one = sf_data[sf_data["judge"] == 1]
    with pytest.raises(
        DataError,
        match=r"raters column 'judge' has 1 distinct value\(s\) \(\[1\]\); "
        r"this analysis needs at least 2",
    ):
        icc(one, targets="target", raters="judge", ratings="rating")
    with pytest.raises(
        DataError, match=r"ratings column 'rating' is constant \(every value is 3\)"
    ):
        icc(sf_data.assign(rating=3), targets="target", raters="judge", ratings="rating")
    with pytest.raises(DataError, match=r"column\(s\) ratings='score' not in the data frame"):
        icc(sf_data, targets="target", raters="judge", ratings="score")
    doubled = pd.concat([sf_data, sf_data.iloc[:1]])
    with pytest.raises(
        DataError,
        match=r"1 \(target, judge\) pairs appear more than once \(e.g. target=1, judge=1\)",
    ):
        icc(doubled, targets="target", raters="judge", ratings="rating")
    text = sf_data.assign(rating=sf_data["rating"].astype(str).replace("9", "nine"))
    with pytest.raises(DataError, match=r"ratings column 'rating' has non-numeric value 'nine'"):
        icc(text, targets="target", raters="judge", ratings="rating")


def test_icc_refuses_perfect_agreement_rather_than_nan() -> None:
    perfect = pd.DataFrame(
        {"t": [1, 1, 2, 2, 3, 3], "r": ["a", "b"] * 3, "y": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]}
    )
    with pytest.raises(DataError, match="the residual mean square is 0"):
        icc(perfect, targets="t", raters="r", ratings="y")


# ------------------------------------------------------------------ clustered targets


def test_icc_resampled_forms_equal_the_icc_of_repeated_rows() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 4)) + rng.normal(size=(12, 1))
    weights = multinomial_weights(rng, 12, 5)
    got = _icc_resampled(x, weights)
    for b in range(5):
        table, _ = _icc_from_matrix(np.repeat(x, weights[b].astype(int), axis=0), 0.95)
        np.testing.assert_allclose(got[b], table.loc[FORMS, "estimate"], atol=1e-12)


def test_icc_cluster_interval_leaves_out_each_case() -> None:
    # Targets are stimuli (a case under one arm): each form's interval leaves out
    # one case at a time, on Fisher's z scale (k = 4 raters for single-rater forms,
    # -0.5 log(1 - r) for the mean of the raters); estimates and F tests unchanged.
    data = stimuli(np.random.default_rng(1), n_raters=4, n_cases=12, likert=False)
    kw = {"targets": "unit", "raters": "rater", "ratings": "value"}
    res = icc(data, **kw, clusters="case")
    plain = icc(data, **kw)
    assert (res.interval, res.n_clusters, plain.interval) == ("cluster jackknife", 12, "F")
    cols = ["estimate", "F", "p_value"]
    pd.testing.assert_frame_equal(res.table[cols], plain.table[cols])
    for form in FORMS:
        low, high = case_jackknife(
            data,
            lambda d, f=form: float(icc(d, **kw).table.loc[f, "estimate"]),
            raters=None if form.endswith("k") else 4,
        )
        assert res.table.loc[form, "ci_low"] == pytest.approx(low), form
        assert res.table.loc[form, "ci_high"] == pytest.approx(high), form


def test_icc_cluster_errors() -> None:
    data = stimuli(np.random.default_rng(2), n_raters=3, n_cases=6, likert=False)
    kw = {"targets": "unit", "raters": "rater", "ratings": "value"}
    with pytest.raises(DataError, match=r"the ICC1 has 2 cluster\(s\); an interval over clusters"):
        icc(data[data["case"] < "c002"], **kw, clusters="case")
    with pytest.raises(DataError, match=r"column\(s\) clusters='site' not in the data frame"):
        icc(data, **kw, clusters="site")
    data.loc[0, "case"] = "c999"
    with pytest.raises(DataError) as info:
        icc(data, **kw, clusters="case")
    assert str(info.value) == (
        "unit='c000|a' lies in 2 clusters (['c000', 'c999']); each unit must belong to one "
        "cluster of column 'case'"
    )


# ------------------------------------------------------------------ coverage (simulation)


@pytest.mark.slow
def test_icc2_case_jackknife_covers_the_panels_value() -> None:
    # A fixed panel of 6 raters reads 60 new cases per study, each under 2 arms (120
    # stimuli). The target is the panel's ICC(A,1) over infinitely many cases: the
    # statistic on 100,000 cases (200,000 stimuli; SD about 0.002). 1000 studies:
    # MC SE of a coverage near 0.95 is 0.0069; the F interval, which takes the 120
    # stimuli as independent, is shown to miss on 300 of them.
    panel = RaterPanel(seed=81, n_raters=6)
    rng = np.random.default_rng(82)
    big = panel.ratings(rng, 100_000)
    truth = _icc_from_matrix(big.transpose(2, 0, 1).reshape(-1, 6), 0.95)[0].loc["ICC2", "estimate"]
    kw = {"targets": "unit", "raters": "rater", "ratings": "y"}
    hits, f_hits = [], []
    for i in range(1000):
        data = RaterPanel.long(panel.ratings(rng, 60))
        res = icc(data, **kw, clusters="case").form("ICC2")
        hits.append(res.ci_low <= truth <= res.ci_high)
        if i < 300:
            plain = icc(data, **kw).form("ICC2")
            f_hits.append(plain.ci_low <= truth <= plain.ci_high)
    coverage, f_coverage = float(np.mean(hits)), float(np.mean(f_hits))
    assert abs(coverage - 0.95) <= 2 * math.sqrt(0.95 * 0.05 / 1000), f"coverage {coverage:.4f}"
    assert f_coverage < 0.95 - 2 * math.sqrt(0.95 * 0.05 / 300), f"F coverage {f_coverage:.4f}"
