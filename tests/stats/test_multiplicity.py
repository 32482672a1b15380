"""Tests of studyhub.stats.multiplicity."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from studyhub.errors import DataError
from studyhub.stats.multiplicity import (
    adjust_family,
    adjust_pvalue_matrix,
    adjust_pvalues,
    family_interval,
)

P = [0.01, 0.04, 0.03, 0.005]


def test_holm_by_hand() -> None:
    # Holm (1979): sorted p 0.005, 0.01, 0.03, 0.04 times m, m-1, ... = 0.02, 0.03,
    # 0.06, 0.04, then running maximum 0.02, 0.03, 0.06, 0.06 (hand computation;
    # R's p.adjust(c(.01,.04,.03,.005), "holm") is defined the same way).
    np.testing.assert_allclose(adjust_pvalues(P, "holm"), [0.03, 0.06, 0.06, 0.02], rtol=1e-12)


def test_bonferroni_by_hand() -> None:
    # Bonferroni: min(1, 4 p) (hand computation).
    np.testing.assert_allclose(adjust_pvalues(P, "bonferroni"), [0.04, 0.16, 0.12, 0.02])
    np.testing.assert_allclose(adjust_pvalues([0.3, 0.5], "bonferroni"), [0.6, 1.0])


def test_fixed_sequence_stops_at_first_non_rejection() -> None:
    adjusted = adjust_pvalues([0.01, 0.2, 0.001], "fixed_sequence")
    np.testing.assert_allclose(adjusted, [0.01, 0.2, 0.2])
    # the third p-value is tiny but is never tested: the sequence stopped at the second
    assert list(adjusted <= 0.05) == [True, False, False]
    # order matters: the same p-values in another order all reject
    assert list(adjust_pvalues([0.001, 0.01, 0.04], "fixed_sequence") <= 0.05) == [True] * 3


def test_none_leaves_p_values() -> None:
    np.testing.assert_array_equal(adjust_pvalues(P, "none"), P)


def test_agrees_with_statsmodels_and_matrix_form() -> None:
    rng = np.random.default_rng(3)
    p = rng.uniform(0, 0.2, size=(30, 4))
    for method in ("holm", "bonferroni"):
        rows = np.array([multipletests(row, method=method)[1] for row in p])
        np.testing.assert_allclose(adjust_pvalue_matrix(p, method), rows, rtol=1e-12)
    for method in ("holm", "bonferroni", "fixed_sequence", "none"):
        rows = np.array([adjust_pvalues(row, method) for row in p])
        np.testing.assert_allclose(adjust_pvalue_matrix(p, method), rows, rtol=1e-12)


@pytest.mark.parametrize(
    ("p", "method", "message"),
    [
        ([0.1, float("nan")], "holm", "p-value nan at position 1 is not a probability"),
        ([0.1, 1.5], "holm", "p-value 1.5 at position 1 is not a probability in [0, 1]"),
        ([], "holm", "no p-values to adjust"),
        ([0.1], "hochberg", "multiplicity method 'hochberg' is unknown; use one of holm"),
    ],
)
def test_errors(p: list[float], method: str, message: str) -> None:
    with pytest.raises(DataError) as info:
        adjust_pvalues(p, method)
    assert message in str(info.value)


def test_an_untested_hypothesis_stays_in_the_family_with_p_1() -> None:
    # Holm over m = 3 (hand computation): sorted 0.017, 0.03, 1 times 3, 2, 1 = 0.051, 0.06,
    # 1. Dropping the untested one (m = 2) would give 0.034, 0.034: a PASS made by no data.
    np.testing.assert_allclose(adjust_family([0.017, None, 0.03], "holm"), [0.051, 1.0, 0.06])
    np.testing.assert_allclose(adjust_pvalues([0.017, 0.03], "holm"), [0.034, 0.034])
    np.testing.assert_allclose(
        adjust_family([0.017, float("nan"), 0.03], "bonferroni"), [0.051, 1.0, 0.09]
    )
    # a fixed sequence stops at it
    np.testing.assert_allclose(
        adjust_family([0.01, None, 0.001], "fixed_sequence"), [0.01, 1.0, 1.0]
    )


@pytest.mark.parametrize(
    ("m", "method", "coverage", "adjustment"),
    [
        (2, "bonferroni", 0.975, "Bonferroni-adjusted over 2 primary tests"),
        (
            4,
            "holm",
            0.9875,
            "Bonferroni level over 4 primary tests (Holm's first step; a later Holm step may "
            "reject with the null value inside)",
        ),
        (
            3,
            "fixed_sequence",
            0.95,
            "unadjusted: the fixed sequence of 3 tests spends the full level",
        ),
        (1, "holm", 0.95, "unadjusted: a family of one primary test"),
        (3, "none", 0.95, "unadjusted (multiplicity: none)"),
    ],
)
def test_family_interval_levels(m: int, method: str, coverage: float, adjustment: str) -> None:
    # Bonferroni: each of m intervals at 1 - (1 - 0.95) / m holds jointly with >= 95 %
    level = family_interval(0.95, m, method)
    assert level.coverage == pytest.approx(coverage, abs=1e-12)
    assert level.adjustment == adjustment


def test_family_interval_errors() -> None:
    with pytest.raises(DataError) as info:
        family_interval(0.95, 0, "holm")
    assert "family size is 0; pass the number of hypotheses (at least 1)" in str(info.value)
    with pytest.raises(DataError) as info:
        family_interval(0.95, 2, "hochberg")
    assert "multiplicity method 'hochberg' is unknown" in str(info.value)
