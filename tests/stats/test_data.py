"""Tests of studyhub/stats/_data.py: the checks every statistic shares.

Infinite values are refused in every column a statistic reads, by one check,
with a message naming the column, the value, the rows (first few and how many)
and the fix; missing values only where the statistic does not allow them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from studyhub.errors import DataError
from studyhub.protocol.load import load_study
from studyhub.stats import (
    cluster_bootstrap,
    cohen_kappa,
    compare_arms,
    evaluate_criteria,
    fleiss_kappa,
    friedman_test,
    icc,
    intra_rater_agreement,
    krippendorff_alpha,
    metric_correlation,
    mrmc,
    write_imrmc,
)
from studyhub.stats._data import require_columns, require_numeric
from tests.paths import DEMO_PROTOCOL


def _ratings(n_cases: int = 8, raters: tuple[str, ...] = ("a", "b", "c")) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        [
            {"case": f"c{c}", "rater": r, "rating": float(rng.integers(1, 6))}
            for c in range(n_cases)
            for r in raters
        ]
    )


def test_infinite_values_are_refused_naming_value_rows_and_fix() -> None:
    data = _ratings()
    data.loc[3, "rating"] = np.inf
    data.loc[7, "rating"] = -np.inf
    with pytest.raises(DataError) as err:
        require_columns(data, targets="case", ratings="rating")
    assert str(err.value) == (
        "ratings column 'rating' has 2 infinite values (inf at row 3, -inf at row 7); every "
        "value in 'rating' must be a finite number: correct them or drop those rows"
    )


def test_many_bad_rows_are_shown_first_few_and_counted() -> None:
    data = _ratings()
    data.loc[2:9, "rating"] = np.inf
    with pytest.raises(DataError, match=r"has 8 infinite values \(inf at row 2, inf at row 3, "):
        require_columns(data, ratings="rating")
    with pytest.raises(DataError, match=r"inf at row 6 and 3 more\); every value in 'rating'"):
        require_columns(data, ratings="rating")


def test_missing_values_are_refused_unless_the_statistic_allows_them() -> None:
    data = _ratings()
    data.loc[[1, 4], "rater"] = None
    data.loc[5, "rating"] = np.nan
    with pytest.raises(DataError) as err:
        require_columns(data, raters="rater", ratings="rating", missing_ok=("ratings",))
    assert str(err.value) == (
        "raters column 'rater' has 2 missing values (rows 1, 4); every row needs its raters: "
        "fill them in or drop those rows"
    )
    # allowed where the statistic handles them; infinite values never are
    frame = require_columns(data.dropna(subset=["rater"]), ratings="rating", missing_ok=["ratings"])
    assert frame["rating"].isna().sum() == 1
    data.loc[6, "rating"] = np.inf
    with pytest.raises(DataError, match=r"'rating' has an infinite value \(inf at row 6\)"):
        require_columns(data, ratings="rating", missing_ok=["ratings"])


def test_every_bad_column_is_named_in_one_message() -> None:
    data = _ratings()
    data.loc[0, "rating"] = -np.inf
    data.loc[2, "case"] = np.nan
    with pytest.raises(DataError) as err:
        require_columns(data, targets="case", ratings="rating")
    lines = str(err.value).splitlines()
    assert lines[0] == "2 columns hold unusable values:"
    assert lines[1].startswith("  - targets column 'case' has a missing value (row 2)")
    assert lines[2].startswith("  - ratings column 'rating' has an infinite value (-inf at row 0)")


def test_text_that_reads_as_infinite_is_refused_where_numbers_are_needed() -> None:
    data = pd.DataFrame({"rating": ["1", "2", "Infinity"], "rater": ["inf", "b", "c"]})
    # a text label that reads "inf" is a label, not a number ...
    assert list(require_columns(data, raters="rater").columns) == ["rater"]
    # ... but as a rating it is an infinite number
    with pytest.raises(DataError, match=r"'rating' has an infinite value \(inf at row 2\)"):
        require_numeric(data, "rating", role="ratings")


def _long_arms() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame(
        [
            {
                "arm": arm,
                "rater": f"r{r}",
                "case": f"c{c}",
                "rating": float(np.clip(np.rint(3 + eff + rng.normal(0, 1)), 1, 5)),
            }
            for arm, eff in (("control", 0.0), ("ig", 0.8))
            for r in range(4)
            for c in range(10)
        ]
    )


def _mrmc_data() -> pd.DataFrame:
    rng = np.random.default_rng(2)
    return pd.DataFrame(
        [
            {
                "reader": f"r{r}",
                "modality": m,
                "case": f"c{c}",
                "truth": c % 2,
                "rating": float(rng.integers(1, 6)),
            }
            for r in range(3)
            for m in ("A", "B")
            for c in range(10)
        ]
    )


def _criteria_data() -> pd.DataFrame:
    frame = _long_arms().rename(columns={"rating": "value"})
    return frame.assign(measure="usefulness")


def _repeats() -> pd.DataFrame:
    data = _ratings()
    return pd.concat([data.assign(reading=1), data.assign(reading=2)], ignore_index=True)


# (name, data, column to spoil, call)
PUBLIC: list[tuple[str, Callable[[], pd.DataFrame], str, Callable[..., Any]]] = [
    (
        "icc",
        _ratings,
        "rating",
        lambda d, _: icc(d, targets="case", raters="rater", ratings="rating"),
    ),
    (
        "krippendorff_alpha",
        _ratings,
        "rating",
        lambda d, _: krippendorff_alpha(
            d, units="case", raters="rater", ratings="rating", n_boot=100
        ),
    ),
    (
        "cohen_kappa",
        lambda: _ratings(raters=("a", "b")),
        "rating",
        lambda d, _: cohen_kappa(d, subjects="case", raters="rater", ratings="rating"),
    ),
    (
        "fleiss_kappa",
        _ratings,
        "rating",
        lambda d, _: fleiss_kappa(d, subjects="case", raters="rater", ratings="rating"),
    ),
    (
        "intra_rater_agreement",
        _repeats,
        "rating",
        lambda d, _: intra_rater_agreement(
            d, items="case", raters="rater", ratings="rating", repeat="reading", n_boot=100
        ),
    ),
    (
        "metric_correlation",
        lambda: _ratings().assign(metric=np.linspace(0, 1, 24)),
        "metric",
        lambda d, _: metric_correlation(
            d, cases="case", ratings="rating", metric="metric", n_boot=100
        ),
    ),
    (
        "compare_arms",
        _long_arms,
        "rating",
        lambda d, _: compare_arms(
            d, arm="arm", rating="rating", rater="rater", case="case", reference="control"
        ),
    ),
    (
        "cluster_bootstrap",
        _long_arms,
        "rating",
        lambda d, _: cluster_bootstrap(
            d,
            arm="arm",
            rating="rating",
            rater="rater",
            case="case",
            reference="control",
            n_boot=100,
        ),
    ),
    (
        "friedman_test",
        _long_arms,
        "rating",
        lambda d, _: friedman_test(d, treatment="arm", rating="rating", block="case"),
    ),
    (
        "mrmc",
        _mrmc_data,
        "rating",
        lambda d, _: mrmc(
            d, reader="reader", modality="modality", case="case", truth="truth", rating="rating"
        ),
    ),
    (
        "write_imrmc",
        _mrmc_data,
        "rating",
        lambda d, out: write_imrmc(
            d,
            out / "x.imrmc",
            reader="reader",
            modality="modality",
            case="case",
            truth="truth",
            rating="rating",
        ),
    ),
    (
        "evaluate_criteria",
        _criteria_data,
        "value",
        lambda d, _: evaluate_criteria(d, plan=load_study(DEMO_PROTOCOL).plan),
    ),
]


@pytest.mark.parametrize("value", [np.inf, -np.inf])
@pytest.mark.parametrize(("name", "make", "column", "call"), PUBLIC, ids=[p[0] for p in PUBLIC])
def test_every_public_statistic_refuses_infinite_values(
    tmp_path: Path,
    name: str,
    make: Callable[[], pd.DataFrame],
    column: str,
    call: Callable[..., Any],
    value: float,
) -> None:
    data = make()
    call(data, tmp_path)  # the clean data work ...
    for leftover in tmp_path.iterdir():
        leftover.unlink()
    data.loc[5, column] = value
    with pytest.raises(DataError) as err:  # ... one infinite cell does not
        call(data, tmp_path)
    assert f"column {column!r} has an infinite value ({value:g} at row 5)" in str(err.value)
    assert "must be a finite number: correct it or drop the row" in str(err.value)
    assert list(tmp_path.iterdir()) == []  # write_imrmc wrote nothing
