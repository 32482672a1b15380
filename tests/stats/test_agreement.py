"""Tests of studyhub.stats.agreement against published reference numbers.

Reference data live in tests/data/reference/<folder>/ (CSV, expected.json and
SOURCE.md copied unchanged from the project's reference collection). Every
expected value carries its source in a comment beside the assertion.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import krippendorff
import numpy as np
import pandas as pd
import pingouin
import pytest
from statsmodels.stats import inter_rater

from studyhub.errors import DataError
from studyhub.stats.agreement import (
    _AlphaParts,
    cohen_kappa,
    fleiss_kappa,
    icc,
    intra_rater_agreement,
    krippendorff_alpha,
)

REFERENCE = Path(__file__).resolve().parents[1] / "data" / "reference"
FORMS = ["ICC1", "ICC2", "ICC3", "ICC1k", "ICC2k", "ICC3k"]


def expected(folder: str) -> dict[str, Any]:
    return json.loads((REFERENCE / folder / "expected.json").read_text())


def printed(actual: float, value: float, decimals: int) -> bool:
    """True when ``actual`` rounds to ``value`` as printed with ``decimals`` decimals."""
    return abs(actual - value) <= 0.5 * 10.0**-decimals + 1e-12


# --------------------------------------------------------------------------- ICC


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


# --------------------------------------------------------------------------- Fleiss' kappa


@pytest.fixture(scope="module")
def diagnoses() -> pd.DataFrame:
    return pd.read_csv(REFERENCE / "fleiss_kappa_1971_diagnoses" / "ratings_long.csv")


def test_fleiss_kappa_matches_fleiss_1971(diagnoses: pd.DataFrame) -> None:
    res = fleiss_kappa(diagnoses, subjects="subject", raters="rater", ratings="category")
    paper = expected("fleiss_kappa_1971_diagnoses")["published_fleiss_1971"]
    assert res.n_subjects == 30 and res.n_raters_per_subject == 6
    # Fleiss (1971) Psychol Bull 76:378-382, worked example, 3 decimals: kappa .430
    assert printed(res.estimate, paper["kappa"], 3)
    # Fleiss (1971): P-bar .556, P-e .220 (3 decimals)
    assert printed(res.p_bar, paper["P_bar"], 3)
    assert printed(res.p_e, paper["P_e"], 3)
    # Fleiss (1971) per-category kappas .245 .245 .520 .471 .566 (3 decimals)
    for cat, value in paper["per_category_kappa"].items():
        assert printed(res.per_category["estimate"].to_dict()[int(cat)], value, 3), cat


def test_fleiss_kappa_matches_irr(diagnoses: pd.DataFrame) -> None:
    res = fleiss_kappa(diagnoses, subjects="subject", raters="rater", ratings="category")
    irr = expected("fleiss_kappa_1971_diagnoses")["published_irr_R"]
    # R irr 0.84.1 kappam.fleiss(diagnoses): Kappa = 0.4302445 (7 decimals), as recorded in
    # statsmodels/stats/tests/test_inter_rater.py::test_fleiss_kappa_irr
    assert printed(res.estimate, irr["kappa"], 7)
    # irr kappam.fleiss: z = 17.65183 (5 decimals)
    assert printed(res.z, irr["z"], 5)
    # irr kappam.fleiss: p-value = 0 (printed as 0)
    assert res.p_value == pytest.approx(irr["p_value"], abs=1e-12)


def test_fleiss_kappa_matches_crosscheck(diagnoses: pd.DataFrame) -> None:
    res = fleiss_kappa(diagnoses, subjects="subject", raters="rater", ratings="category")
    cc = expected("fleiss_kappa_1971_diagnoses")["crosscheck_computed"]
    # expected.json crosscheck_computed (independent numpy + statsmodels 0.15.0 fleiss_kappa)
    assert res.estimate == pytest.approx(cc["kappa"], abs=1e-12)  # kappa 0.43024452006014074
    assert res.p_bar == pytest.approx(cc["P_bar"], abs=1e-12)  # P_bar 0.5555555555555556
    assert res.p_e == pytest.approx(cc["P_e"], abs=1e-12)  # P_e 0.21993827160493828
    # category proportions 0.14444444 ... and marginal counts [26, 26, 30, 55, 43] (8 decimals)
    np.testing.assert_allclose(
        res.per_category["proportion"], cc["category_proportions"], atol=5e-9
    )
    assert res.per_category["count"].tolist() == cc["category_marginal_counts"]
    # per-category kappas [0.24475524, ...] (8 decimals)
    np.testing.assert_allclose(res.per_category["estimate"], cc["per_category_kappa"], atol=5e-9)
    # Fleiss-Nee-Landis (1979) SE under H0: 0.02437393 overall, 0.04714045 per category
    assert printed(res.se, cc["se0_overall"], 8)
    np.testing.assert_allclose(res.per_category["se"], cc["se0_per_category"], atol=5e-9)
    # z overall 17.65183058 and per category [5.1920428, 5.1920428, 11.03086579, ...]
    assert printed(res.z, cc["z_overall"], 8)
    np.testing.assert_allclose(res.per_category["z"], cc["z_per_category"], atol=5e-8)


def test_fleiss_kappa_agrees_with_statsmodels_on_random_data() -> None:
    rng = np.random.default_rng(7)
    truth = rng.integers(0, 4, 50)
    rows = [
        (s, r, int(truth[s]) if rng.random() < 0.6 else int(rng.integers(0, 4)))
        for s in range(50)
        for r in range(5)
    ]
    data = pd.DataFrame(rows, columns=["s", "r", "y"])
    res = fleiss_kappa(data, subjects="s", raters="r", ratings="y")
    table = pd.crosstab(data["s"], data["y"]).to_numpy()
    assert res.estimate == pytest.approx(inter_rater.fleiss_kappa(table), abs=1e-12)


def test_fleiss_kappa_errors(diagnoses: pd.DataFrame) -> None:
    with pytest.raises(
        DataError,
        match=r"Fleiss' kappa needs the same number of ratings per subject, but it ranges "
        r"from 5 \(subject=1\) to 6",
    ):
        fleiss_kappa(diagnoses.iloc[1:], subjects="subject", raters="rater", ratings="category")
    with pytest.raises(DataError, match=r"raters column 'rater' has 1 distinct value\(s\)"):
        fleiss_kappa(
            diagnoses[diagnoses["rater"] == 1],
            subjects="subject",
            raters="rater",
            ratings="category",
        )
    with pytest.raises(
        DataError,
        match=r"ratings column 'category' has 1 distinct value\(s\) \(\[2\]\); this analysis "
        r"needs at least 2",
    ):
        fleiss_kappa(
            diagnoses.assign(category=2), subjects="subject", raters="rater", ratings="category"
        )
    with pytest.raises(DataError, match=r"column\(s\) subjects='patient' not in the data frame"):
        fleiss_kappa(diagnoses, subjects="patient", raters="rater", ratings="category")


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


# --------------------------------------------------------------------------- Krippendorff's alpha


@pytest.fixture(scope="module")
def kripp() -> pd.DataFrame:
    return pd.read_csv(REFERENCE / "krippendorff_alpha_2011_4x12" / "ratings_long.csv")


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval", "ratio"])
def test_alpha_matches_krippendorff_2011(kripp: pd.DataFrame, level: Any) -> None:
    res = krippendorff_alpha(
        kripp, units="unit", raters="observer", ratings="value", level=level, n_boot=200
    )
    exp = expected("krippendorff_alpha_2011_4x12")
    # Krippendorff (2011) Computing Krippendorff's Alpha-Reliability, UPenn ASC papers 43,
    # 3 decimals: nominal .743, ordinal .815, interval .849, ratio .797
    assert printed(res.estimate, exp["published_krippendorff_2011"][f"alpha_{level}"], 3)
    cc = exp["crosscheck_more_digits"]
    # krippendorff 0.9.0 + independent coincidence-matrix code (expected.json
    # crosscheck_more_digits, 6 decimals): alpha 0.743421 / 0.815388 / 0.849107 / 0.797403
    assert printed(res.estimate, cc[f"alpha_{level}"], 6)
    # same source: D_o 0.2 / 47.275 / 0.433333 / 0.022433 and
    # D_e 0.779487 / 256.076923 / 2.871795 / 0.110726 (6 decimals)
    assert printed(res.observed_disagreement, cc[f"Do_{level}"], 6)
    assert printed(res.expected_disagreement, cc[f"De_{level}"], 6)
    # same source: 40 pairable values; unit 12 (one value) drops out, leaving 11 units
    assert res.n_values == cc["n_pairable_values"]
    assert res.n_units == 11 and res.n_raters == 4
    assert res.ci_low <= res.estimate <= res.ci_high


def _simulate_reliability(
    rng: np.random.Generator, n_units: int, n_raters: int, missing: float, continuous: bool
) -> np.ndarray:
    truth = rng.integers(1, 6, n_units)
    x = truth[:, None] + rng.normal(0.0, 1.0, (n_units, n_raters))
    x = np.round(x, 1) + 5.0 if continuous else np.clip(np.round(x), 1, 5)
    x[rng.random((n_units, n_raters)) < missing] = np.nan
    return x


def _long(x: np.ndarray) -> pd.DataFrame:
    units, raters = np.indices(x.shape)
    return pd.DataFrame({"unit": units.ravel(), "rater": raters.ravel(), "y": x.ravel()})


@pytest.mark.parametrize("continuous", [False, True])
@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval", "ratio"])
def test_alpha_fast_path_matches_krippendorff_package(level: Any, continuous: bool) -> None:
    rng = np.random.default_rng(5)
    x = _simulate_reliability(rng, 40, 6, missing=0.25, continuous=continuous)
    res = krippendorff_alpha(
        _long(x), units="unit", raters="rater", ratings="y", level=level, n_boot=100
    )
    assert res.estimate == pytest.approx(
        krippendorff.alpha(x.T, level_of_measurement=level), abs=1e-9
    )
    # A bootstrap replicate (weights = how often each unit is drawn) equals alpha on the
    # explicitly resampled reliability matrix.
    keep = (~np.isnan(x)).sum(axis=1) >= 2
    xp = x[keep]
    domain, codes = np.unique(xp[~np.isnan(xp)], return_inverse=True)
    counts = np.zeros((len(xp), domain.size))
    rows = np.nonzero(~np.isnan(xp))[0]
    np.add.at(counts, (rows, codes), 1.0)
    parts = _AlphaParts(counts, domain, level)
    for _ in range(3):
        draw = rng.integers(0, len(xp), len(xp))
        weights = np.bincount(draw, minlength=len(xp)).astype(float)[None, :]
        assert parts.alpha(weights)[0] == pytest.approx(
            krippendorff.alpha(xp[draw].T, level_of_measurement=level), abs=1e-9
        )


def test_alpha_bootstrap_covers_estimate_and_shrinks_with_units() -> None:
    rng = np.random.default_rng(21)
    widths = []
    for n_units in (30, 300):
        x = _simulate_reliability(rng, n_units, 5, missing=0.1, continuous=False)
        res = krippendorff_alpha(_long(x), units="unit", raters="rater", ratings="y")
        assert res.ci_low < res.estimate < res.ci_high
        assert res.n_boot_used == 2000
        widths.append(res.ci_high - res.ci_low)
    assert widths[1] < widths[0] / 2  # ~ 1/sqrt(10) in theory


def test_alpha_is_reproducible_and_accepts_ordered_categories(kripp: pd.DataFrame) -> None:
    kw: dict[str, Any] = {"units": "unit", "raters": "observer", "ratings": "value"}
    a = krippendorff_alpha(kripp, seed=3, **kw)
    b = krippendorff_alpha(kripp, seed=3, **kw)
    c = krippendorff_alpha(kripp, seed=4, **kw)
    assert (a.ci_low, a.ci_high) == (b.ci_low, b.ci_high)
    assert (a.ci_low, a.ci_high) != (c.ci_low, c.ci_high)
    labels = {1: "none", 2: "low", 3: "mid", 4: "high", 5: "max"}
    ordered = kripp.assign(
        value=pd.Categorical(
            kripp["value"].map(labels), categories=list(labels.values()), ordered=True
        )
    )
    res = krippendorff_alpha(ordered, level="ordinal", **kw)
    assert res.estimate == pytest.approx(krippendorff_alpha(kripp, level="ordinal", **kw).estimate)
    nominal = krippendorff_alpha(
        kripp.assign(value=kripp["value"].map(labels)), level="nominal", **kw
    )
    assert printed(nominal.estimate, 0.743, 3)  # Krippendorff (2011) nominal .743


def test_alpha_is_fast_on_a_reader_study_sized_data_set() -> None:
    # 300 cases x 4 arms = 1200 stimuli (units), 20 raters, 2000 resamples.
    rng = np.random.default_rng(0)
    data = _long(_simulate_reliability(rng, 1200, 20, missing=0.1, continuous=False))
    for level in ("nominal", "ordinal", "interval", "ratio"):
        start = time.perf_counter()
        krippendorff_alpha(data, units="unit", raters="rater", ratings="y", level=level)
        assert time.perf_counter() - start < 5.0, level


def test_alpha_errors(kripp: pd.DataFrame) -> None:
    kw: dict[str, Any] = {"units": "unit", "raters": "observer", "ratings": "value"}
    with pytest.raises(
        DataError,
        match=r"raters column 'observer' has 1 distinct value\(s\) \(\['A'\]\); "
        r"this analysis needs at least 2",
    ):
        krippendorff_alpha(kripp[kripp["observer"] == "A"], **kw)
    with pytest.raises(DataError, match=r"ratings column 'value' is constant \(every value is 2\)"):
        krippendorff_alpha(kripp.assign(value=2), **kw)
    with pytest.raises(DataError, match=r"column\(s\) ratings='score' not in the data frame"):
        krippendorff_alpha(kripp, units="unit", raters="observer", ratings="score")
    with pytest.raises(DataError, match=r"level is 'metric'; pass one of 'nominal'"):
        krippendorff_alpha(kripp, level="metric", **kw)  # type: ignore[arg-type]
    with pytest.raises(
        DataError, match=r"1 \(unit, observer\) pairs appear more than once \(e.g. unit=1, "
    ):
        krippendorff_alpha(pd.concat([kripp, kripp.iloc[:1]]), **kw)
    with pytest.raises(DataError, match=r"n_boot is 10; pass an integer of at least 100"):
        krippendorff_alpha(kripp, n_boot=10, **kw)
    with pytest.raises(DataError, match=r"has negative value -1; the ratio level needs"):
        krippendorff_alpha(kripp.assign(value=kripp["value"] - 2), level="ratio", **kw)
    unpaired = pd.DataFrame({"unit": [1, 2, 3], "observer": ["A", "B", "C"], "value": [1, 2, 3]})
    with pytest.raises(DataError, match=r"0 unit\(s\) have ratings from at least 2 raters"):
        krippendorff_alpha(unpaired, **kw)
    unordered = kripp.assign(value=pd.Categorical(kripp["value"]))
    with pytest.raises(DataError, match="is an unordered categorical"):
        krippendorff_alpha(unordered, level="ordinal", **kw)


# --------------------------------------------------------------------------- intra-rater


@pytest.fixture(scope="module")
def repeat_reads() -> pd.DataFrame:
    """5 raters x 60 items on a 1-5 scale; items 0-29 are read twice (repeat items)."""
    rng = np.random.default_rng(3)
    rows = []
    for rater in range(5):
        for item in range(60):
            truth = int(rng.integers(1, 6))
            rows.append((f"r{rater}", item, 1, int(np.clip(truth + rng.integers(-1, 2), 1, 5))))
            if item < 30:
                rows.append((f"r{rater}", item, 2, int(np.clip(truth + rng.integers(-1, 2), 1, 5))))
    return pd.DataFrame(rows, columns=["rater", "item", "reading", "score"])


def _pairs(data: pd.DataFrame) -> pd.DataFrame:
    """First and repeat readings as a two-'rater' data set with (rater, item) subjects."""
    repeated = data[data["item"] < 30]
    return repeated.assign(subject=repeated["rater"] + "/" + repeated["item"].astype(str))


@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
def test_intra_rater_kappa_equals_cohen_kappa(repeat_reads: pd.DataFrame, weights: Any) -> None:
    res = intra_rater_agreement(
        repeat_reads,
        items="item",
        raters="rater",
        ratings="score",
        repeat="reading",
        weights=weights,
        categories=[1, 2, 3, 4, 5],
    )
    assert (res.n_raters, res.n_items, res.n_pairs) == (5, 30, 150)
    pairs = _pairs(repeat_reads)
    kw: dict[str, Any] = {"raters": "reading", "ratings": "score", "weights": weights}
    kw["categories"] = [1, 2, 3, 4, 5]
    for rater, row in res.per_rater.iterrows():
        one = cohen_kappa(pairs[pairs["rater"] == rater], subjects="item", **kw)
        assert row["n_items"] == 30
        assert row["estimate"] == pytest.approx(one.estimate, abs=1e-12)
        assert row["ci_low"] == pytest.approx(one.ci_low, abs=1e-12)
        assert row["ci_high"] == pytest.approx(one.ci_high, abs=1e-12)
    pooled = cohen_kappa(pairs, subjects="subject", **kw)
    assert res.estimate == pytest.approx(pooled.estimate, abs=1e-12)
    assert res.ci_low < res.estimate < res.ci_high


def test_intra_rater_icc_equals_icc2(repeat_reads: pd.DataFrame) -> None:
    res = intra_rater_agreement(
        repeat_reads, items="item", raters="rater", ratings="score", repeat="reading", method="icc"
    )
    pairs = _pairs(repeat_reads)
    for rater, row in res.per_rater.iterrows():
        one = icc(
            pairs[pairs["rater"] == rater], targets="item", raters="reading", ratings="score"
        ).form("ICC(A,1)")
        assert row["estimate"] == pytest.approx(one.estimate, abs=1e-12)
        assert row["ci_low"] == pytest.approx(one.ci_low, abs=1e-12)
        assert row["ci_high"] == pytest.approx(one.ci_high, abs=1e-12)
    pooled = icc(pairs, targets="subject", raters="reading", ratings="score").form("ICC2")
    assert res.estimate == pytest.approx(pooled.estimate, abs=1e-12)
    assert res.ci_low < res.estimate < res.ci_high
    assert res.method == "icc" and res.weights is None


def test_intra_rater_accepts_boolean_repeat_and_first(repeat_reads: pd.DataFrame) -> None:
    kw: dict[str, Any] = {"items": "item", "raters": "rater", "ratings": "score"}
    base = intra_rater_agreement(repeat_reads, repeat="reading", **kw)
    flagged = repeat_reads.assign(is_repeat=repeat_reads["reading"] == 2)
    as_bool = intra_rater_agreement(flagged, repeat="is_repeat", **kw)
    assert as_bool.estimate == base.estimate
    swapped = intra_rater_agreement(repeat_reads, repeat="reading", first=2, **kw)
    assert swapped.estimate == pytest.approx(base.estimate, abs=1e-12)  # kappa is symmetric
    with pytest.raises(DataError, match=r"first=3 is not a value of repeat column 'reading'"):
        intra_rater_agreement(repeat_reads, repeat="reading", first=3, **kw)


def test_intra_rater_notes_an_undefined_rater(repeat_reads: pd.DataFrame) -> None:
    constant = repeat_reads.copy()
    constant.loc[constant["rater"] == "r0", "score"] = 3
    res = intra_rater_agreement(
        constant, items="item", raters="rater", ratings="score", repeat="reading"
    )
    row = res.per_rater.loc["r0"]
    assert np.isnan(row["estimate"])
    assert row["note"] == "undefined: one category in both readings"
    assert res.per_rater["note"].drop("r0").eq("").all()


def test_intra_rater_errors(repeat_reads: pd.DataFrame) -> None:
    kw: dict[str, Any] = {"items": "item", "raters": "rater", "ratings": "score"}
    third = repeat_reads.assign(reading=repeat_reads["reading"].where(repeat_reads.index != 0, 3))
    with pytest.raises(
        DataError,
        match=r"repeat column 'reading' has 3 distinct values \(\[3, 2, 1\]\); intra-rater "
        r"agreement compares exactly 2 readings",
    ):
        intra_rater_agreement(third, repeat="reading", **kw)
    once = repeat_reads[repeat_reads["item"] >= 30].assign(reading=lambda d: d["item"] % 2)
    with pytest.raises(DataError, match=r"no item has both readings \(reading=0 and 1\)"):
        intra_rater_agreement(once, repeat="reading", **kw)
    with pytest.raises(DataError, match=r"raters column 'reader'|raters='reader'"):
        intra_rater_agreement(
            repeat_reads, items="item", raters="reader", ratings="score", repeat="reading"
        )
    with pytest.raises(DataError, match=r"method is 'alpha'; pass 'kappa'"):
        intra_rater_agreement(repeat_reads, repeat="reading", method="alpha", **kw)  # type: ignore[arg-type]
    with pytest.raises(
        DataError, match=r"1 \(item, rater, reading\) readings appear more than once"
    ):
        intra_rater_agreement(
            pd.concat([repeat_reads, repeat_reads.iloc[:1]]), repeat="reading", **kw
        )
    with pytest.raises(
        DataError, match=r"ratings column 'score' has 1 distinct value\(s\) \(\[4\]\)"
    ):
        intra_rater_agreement(repeat_reads.assign(score=4), repeat="reading", **kw)
    flat_repeats = repeat_reads.assign(
        score=repeat_reads["score"].where(repeat_reads["item"] >= 30, 4)
    )
    with pytest.raises(
        DataError, match=r"the pooled intra-rater kappa is undefined: the ratings in the 150 "
    ):
        intra_rater_agreement(flat_repeats, repeat="reading", **kw)
