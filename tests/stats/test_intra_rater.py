"""Tests of studyhub.stats.intra_rater.

No published reference exists for the pooled value; per-rater and pooled values
are checked against :func:`cohen_kappa` and :func:`icc`, which are themselves
checked against SAS PROC FREQ and R psych.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from studyhub.errors import DataError
from studyhub.stats.icc import icc
from studyhub.stats.intra_rater import intra_rater_agreement
from studyhub.stats.kappa import cohen_kappa
from tests.stats.helpers import case_jackknife


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


def test_intra_rater_leaves_out_clusters_of_items(repeat_reads: pd.DataFrame) -> None:
    # items 2k and 2k+1 shown as two arms of case k: the pooled interval leaves out
    # one case at a time (atanh scale, two readings); the estimate is unchanged
    kw: dict[str, Any] = {"items": "item", "raters": "rater", "ratings": "score"}
    paired = repeat_reads.assign(case=repeat_reads["item"] // 2)
    plain = intra_rater_agreement(paired, repeat="reading", **kw)
    res = intra_rater_agreement(paired, repeat="reading", clusters="case", **kw)
    assert (res.n_clusters, res.interval, res.n_boot_used) == (15, "cluster jackknife", 0)
    assert res.estimate == plain.estimate and plain.interval == "percentile bootstrap"
    repeated = paired[paired["item"] < 30]
    low, high = case_jackknife(
        repeated,
        lambda d: intra_rater_agreement(d, repeat="reading", n_boot=100, **kw).estimate,
        raters=2,
    )
    assert (res.ci_low, res.ci_high) == (pytest.approx(low), pytest.approx(high))
    bad = paired.assign(case=paired["case"].where(paired.index != 0, 99))
    with pytest.raises(DataError) as info:
        intra_rater_agreement(bad, repeat="reading", clusters="case", **kw)
    assert str(info.value) == (
        "item=0 lies in 2 clusters (['0', '99']); each unit must belong to one cluster of "
        "column 'case'"
    )
