"""Tests of studyhub.stats.fleiss (Fleiss' kappa) against published reference numbers.

Reference data live in tests/data/reference/<folder>/ (CSV, expected.json and
SOURCE.md copied unchanged from the project's reference collection). Every
expected value carries its source in a comment beside the assertion.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats import inter_rater

from studyhub.errors import DataError
from studyhub.stats.fleiss import fleiss_kappa
from studyhub.stats.kappa import fleiss_kappa as reexported
from tests.stats.helpers import REFERENCE, case_jackknife, expected, printed, stimuli


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


def test_fleiss_kappa_is_still_importable_from_kappa() -> None:
    assert reexported is fleiss_kappa


def test_fleiss_interval_leaves_out_each_case() -> None:
    # Subjects are stimuli (a case under one arm); the interval leaves out one case
    # at a time with all its arms and raters, on Fisher's z scale for m = 4 raters.
    data = stimuli(np.random.default_rng(4), n_raters=4, n_cases=15)
    kw = {"subjects": "unit", "raters": "rater", "ratings": "value"}
    res = fleiss_kappa(data, **kw, clusters="case")
    assert (res.n_clusters, res.confidence, res.interval) == (15, 0.95, "cluster jackknife")
    low, high = case_jackknife(data, lambda d: fleiss_kappa(d, **kw).estimate, raters=4)
    assert (res.ci_low, res.ci_high) == (pytest.approx(low), pytest.approx(high))
    plain = fleiss_kappa(data, **kw)  # no interval asked for
    assert plain.estimate == res.estimate and np.isnan(plain.ci_low) and plain.interval is None
    boot = fleiss_kappa(data, **kw, n_boot=200, seed=2)  # percentile bootstrap of subjects
    assert (boot.n_boot, boot.seed, boot.interval) == (200, 2, "percentile bootstrap")
    assert boot.ci_low < boot.estimate < boot.ci_high


def test_fleiss_interval_errors() -> None:
    data = stimuli(np.random.default_rng(5), n_raters=3, n_cases=6)
    kw = {"subjects": "unit", "raters": "rater", "ratings": "value"}
    with pytest.raises(DataError, match="n_boot is 10; pass an integer of at least 100"):
        fleiss_kappa(data, **kw, n_boot=10)
    data.loc[3, "case"] = "c999"
    with pytest.raises(DataError) as info:
        fleiss_kappa(data, **kw, clusters="case")
    assert str(info.value) == (
        "unit='c000|b' lies in 2 clusters (['c000', 'c999']); each unit must belong to one "
        "cluster of column 'case'"
    )
