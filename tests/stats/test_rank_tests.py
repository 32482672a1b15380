"""Tests of studyhub.stats.rank_tests against R's friedman.test and wilcox.test."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from studyhub.errors import DataError
from studyhub.stats.rank_tests import friedman_test, wilcoxon_signed_rank
from tests.stats.helpers import REFERENCE, depression


def test_friedman_rounding_times() -> None:
    data = pd.read_csv(REFERENCE / "friedman_rounding_times" / "ratings_long.csv")
    res = friedman_test(data, treatment="method", rating="time", block="player")
    # R 4.2.2 friedman.test(RoundingTimes), ?friedman.test example (Hollander & Wolfe
    # 1973, p. 140ff): "Friedman chi-squared = 11.143, df = 2, p-value = 0.003805"
    assert round(res.statistic, 3) == 11.143
    assert res.df == 2
    assert round(res.p_value, 6) == 0.003805
    # expected.json friedman_test block (R 4.2.2, more digits; scipy agrees to 1e-12)
    assert res.statistic == pytest.approx(11.142857142857, abs=1e-9)
    assert res.p_value == pytest.approx(0.003805040776, abs=1e-10)
    # derived identity W = chi2 / (n (k - 1)) (expected.json derived_kendalls_W)
    assert res.kendall_w == pytest.approx(0.25324675324675, abs=1e-12)
    assert res.n_blocks == 22


def test_wilcoxon_depression_exact() -> None:
    d = depression()
    diff = d["first_visit_x"] - d["second_visit_y"]
    greater = wilcoxon_signed_rank(diff, alternative="greater")
    # R 4.2.2 wilcox.test(x, y, paired = TRUE, alternative = "greater") (?wilcox.test,
    # Hollander & Wolfe 1973, p. 29f): "V = 40, p-value = 0.01953"; exactly 5/256.
    assert greater.statistic == 40
    assert round(greater.p_value, 5) == 0.01953
    assert greater.p_value == pytest.approx(0.01953125, abs=1e-9)  # expected.json
    assert greater.method == "exact"
    # two-sided exact p 0.0390625 (expected.json signed_rank_x_minus_y)
    two = wilcoxon_signed_rank(diff, alternative="two-sided")
    assert two.p_value == pytest.approx(0.0390625, abs=1e-9)
    # y - x: V = 5 (expected.json V_minus_for_y_minus_x)
    assert wilcoxon_signed_rank(-diff, alternative="less").statistic == 5
    # wilcox.test(exact = FALSE, correct = FALSE) on y - x, "less": p = 0.01907586
    normal = wilcoxon_signed_rank(-diff, alternative="less", method="normal", correction=False)
    assert normal.p_value == pytest.approx(0.01907585509, abs=1e-9)


def test_hodges_lehmann_is_median_of_walsh_averages() -> None:
    d = depression()
    diff = (d["first_visit_x"] - d["second_visit_y"]).to_numpy()
    res = wilcoxon_signed_rank(diff, confidence=0.95)
    walsh = [(diff[i] + diff[j]) / 2 for i in range(9) for j in range(i, 9)]
    assert res.estimate == pytest.approx(float(np.median(walsh)))
    assert res.ci_low < res.estimate < res.ci_high
    # exact interval: the 95% bounds are the 6th smallest and largest Walsh averages
    # (critical value 5 of the n = 9 signed-rank distribution, Hollander & Wolfe table A.4)
    assert res.ci_low == pytest.approx(sorted(walsh)[5])
    assert res.ci_high == pytest.approx(sorted(walsh)[-6])


def test_rank_tests_refuse_incomplete_blocks_and_zero_differences() -> None:
    with pytest.raises(DataError, match="block 1 lacks a rating for some method"):
        friedman_test(
            pd.DataFrame({"method": ["a", "b", "a"], "t": [1, 2, 3], "p": [0, 0, 1]}),
            treatment="method",
            rating="t",
            block="p",
        )
    with pytest.raises(DataError, match="all differences are zero"):
        wilcoxon_signed_rank([0.0, 0.0])
