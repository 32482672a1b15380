"""Tests of studyhub.stats.multiplicity."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from studyhub.errors import DataError
from studyhub.stats.multiplicity import adjust_pvalue_matrix, adjust_pvalues

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
