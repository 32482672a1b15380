"""The interval level and the testing order of compare_arms (studyhub.stats._arms)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from studyhub.errors import DataError
from studyhub.stats._arms import IntervalLevel, interval_level
from studyhub.stats.compare import compare_arms
from tests.stats.helpers import crossed

COMMON: dict[str, Any] = dict(
    arm="arm", rating="score", rater="reader", case="case", reference="control"
)


def test_default_intervals_are_unchanged() -> None:
    """Without confidence=: two-sided 1 - 2 alpha for one-sided hypotheses, 1 - alpha else."""
    assert interval_level("superiority", 0.05, None, None) == IntervalLevel(0.9, 2)
    assert interval_level("two_sided", 0.05, None, None) == IntervalLevel(0.95, 2)
    assert interval_level("superiority", 0.05, 0.95, None) == IntervalLevel(0.95, 1)
    assert interval_level("superiority", 0.05, 0.95, 2) == IntervalLevel(0.95, 2)
    assert interval_level("two_sided", 0.05, 0.99, None) == IntervalLevel(0.99, 2)
    assert IntervalLevel(0.975, 1).two_sided == pytest.approx(0.95)


@pytest.mark.parametrize("method", ["mixed_model", "friedman", "cluster_bootstrap", "ordinal"])
def test_a_one_sided_bound_is_the_lower_limit_of_the_2c_minus_1_interval(method: str) -> None:
    """Every method's equal-tailed interval: the one-sided c bound is the lower limit of the
    two-sided 2c - 1 interval, and nothing is claimed above it."""
    data = crossed(np.random.default_rng(7))
    data["score"] = np.clip(np.rint(3 + data["score"]), 1, 5)  # Likert 1..5, for ordinal
    extra: dict[str, Any] = {"n_boot": 400} if method == "cluster_bootstrap" else {}
    one = compare_arms(data, **COMMON, method=method, confidence=0.95, **extra)
    two = compare_arms(data, **COMMON, method=method, confidence=0.90, sides=2, **extra)
    np.testing.assert_allclose(one.contrasts["ci_low"], two.contrasts["ci_low"], rtol=1e-12)
    assert (one.contrasts["ci_high"] == math.inf).all()
    assert (one.confidence, one.interval_sides) == (0.95, 1)
    assert (two.confidence, two.interval_sides) == (0.90, 2)
    # the tests themselves do not change
    np.testing.assert_array_equal(one.contrasts["p_value"], two.contrasts["p_value"])


def test_mixed_model_bound_by_hand() -> None:
    data = crossed(np.random.default_rng(3))
    row = compare_arms(data, **COMMON, confidence=0.975).contrasts.iloc[0]
    expected = row["estimate"] - stats.t.ppf(0.975, row["df"]) * row["se"]
    assert row["ci_low"] == pytest.approx(expected, rel=1e-12)
    default = compare_arms(data, **COMMON).contrasts.iloc[0]  # two-sided 90 %, as before
    half = stats.t.ppf(0.95, default["df"]) * default["se"]
    assert (default["ci_low"], default["ci_high"]) == pytest.approx(
        (default["estimate"] - half, default["estimate"] + half), rel=1e-12
    )


def test_two_sided_hypothesis_at_a_given_confidence() -> None:
    data = crossed(np.random.default_rng(3))
    res = compare_arms(data, **COMMON, hypothesis="two_sided", confidence=0.99)
    row = res.contrasts.iloc[0]
    half = stats.t.ppf(0.995, row["df"]) * row["se"]
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(
        (row["estimate"] - half, row["estimate"] + half), rel=1e-12
    )
    assert (res.confidence, res.interval_sides) == (0.99, 2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"confidence": 95},
            "confidence is 95; pass the coverage of the intervals, above 0.5 and below 1",
        ),
        ({"confidence": 0.5}, "confidence is 0.5; pass the coverage"),
        ({"sides": 3}, "sides is 3; pass 1 (a lower confidence bound) or 2"),
        (
            {"sides": 1, "hypothesis": "two_sided"},
            "sides=1 asks for a lower confidence bound but hypothesis='two_sided' tests both "
            "directions; pass sides=2 or a one-sided hypothesis",
        ),
    ],
)
def test_bad_interval_options(kwargs: dict[str, Any], message: str) -> None:
    data = crossed(np.random.default_rng(3))
    with pytest.raises(DataError) as info:
        compare_arms(data, **COMMON, **kwargs)
    assert message in str(info.value)


def _strong_after_weak(seed: int = 4) -> pd.DataFrame:
    """A null arm b_weak and a strong arm z_strong, both against a control."""
    data = crossed(np.random.default_rng(seed), effects=(0.0, 0.0, 1.5))
    return data.assign(
        arm=data["arm"].map({"control": "control", "gradcam": "b_weak", "ig": "z_strong"})
    )


def test_fixed_sequence_refuses_the_alphabetical_order_of_reference() -> None:
    """reference= states no testing order: sorted by name, the null b_weak would be tested
    first and the strong z_strong never rejected."""
    with pytest.raises(DataError) as info:
        compare_arms(_strong_after_weak(), **COMMON, multiplicity="fixed_sequence")
    assert str(info.value) == (
        "multiplicity='fixed_sequence' tests the contrasts in their pre-registered order, but "
        "reference='control' states no order (the arms would be tested alphabetically: "
        "['b_weak - control', 'z_strong - control']); pass contrasts=[(arm, versus), ...] in "
        "the planned testing order"
    )


def test_fixed_sequence_follows_the_contrasts_given() -> None:
    data = _strong_after_weak()
    args = {k: v for k, v in COMMON.items() if k != "reference"}
    res = compare_arms(
        data,
        **args,
        contrasts=[("z_strong", "control"), ("b_weak", "control")],
        multiplicity="fixed_sequence",
    )
    table = res.contrasts
    assert list(table["contrast"]) == ["z_strong - control", "b_weak - control"]
    assert list(table["reject"]) == [True, False]
    # one contrast needs no order: reference= is enough
    two_arms = data[data["arm"] != "b_weak"]
    single = compare_arms(two_arms, **COMMON, multiplicity="fixed_sequence").contrasts
    assert list(single["reject"]) == [True]
