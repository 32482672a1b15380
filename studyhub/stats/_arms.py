"""The input side of :func:`studyhub.stats.compare.compare_arms`.

Checks the options (method, hypothesis, margin, alpha, multiplicity, engine),
turns the user's data frame into tidy ``arm, y, rater, case`` columns with the
contrasts resolved, resolves the level and sidedness of the intervals
(:func:`interval_level`), and formats one contrast row of the result table with
its t or normal p-value and interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd
from scipy import stats

from studyhub.errors import DataError
from studyhub.stats._data import (
    as_python,
    require_columns,
    require_levels,
    require_numeric,
    require_variation,
)
from studyhub.stats.bootstrap import resolve_contrasts
from studyhub.stats.mixed import ENGINES
from studyhub.stats.multiplicity import MULTIPLICITY_METHODS

__all__ = [
    "CONTRAST_COLUMNS",
    "HYPOTHESES",
    "METHODS",
    "Hypothesis",
    "IntervalLevel",
    "Method",
    "PreparedArms",
    "check_options",
    "contrast_row",
    "interval_level",
    "p_from_t",
    "prepare_arms",
    "t_quantile",
]

Method = Literal["mixed_model", "friedman", "cluster_bootstrap", "ordinal"]
Hypothesis = Literal["superiority", "non_inferiority", "two_sided"]
METHODS = ("mixed_model", "friedman", "cluster_bootstrap", "ordinal")
HYPOTHESES = ("superiority", "non_inferiority", "two_sided")
CONTRAST_COLUMNS = [
    "contrast",
    "arm",
    "versus",
    "estimate",
    "se",
    "df",
    "statistic",
    "ci_low",
    "ci_high",
    "p_value",
    "p_adjusted",
    "reject",
]


@dataclass(frozen=True)
class PreparedArms:
    """Tidy ratings, the sorted arm labels and the resolved ``(arm, versus)`` contrasts."""

    frame: pd.DataFrame  # columns arm, y, rater, case (arm as str-able labels)
    arms: list[Any]
    contrasts: list[tuple[Any, Any]]
    n_missing: int


def prepare_arms(
    data: pd.DataFrame,
    *,
    arm: str,
    rating: str,
    rater: str,
    case: str,
    reference: Any,
    contrasts: Sequence[tuple[Any, Any]] | None,
    min_raters: int,
) -> PreparedArms:
    """Check the data and return it tidy, refusing missing labels and too few levels.

    Rows with a missing rating are dropped and counted (``n_missing``); a missing
    arm, rater or case is refused.
    """
    frame = require_columns(
        data, arm=arm, rating=rating, rater=rater, case=case, missing_ok=("rating",)
    )
    y = require_numeric(frame, rating, role="rating")
    keep = y.notna().to_numpy()
    n_missing = int((~keep).sum())
    tidy = pd.DataFrame(
        {
            "arm": frame[arm].to_numpy()[keep],
            "y": y.to_numpy()[keep],
            "rater": frame[rater].to_numpy()[keep],
            "case": frame[case].to_numpy()[keep],
        }
    )
    if tidy.empty:
        raise DataError(f"rating column {rating!r} has no non-missing value; pass the ratings")
    require_variation(tidy["y"], role="rating", column=rating)
    arms = sorted(
        map(
            as_python,
            require_levels(tidy[["arm"]].set_axis([arm], axis=1), arm, role="arm", minimum=2),
        ),
        key=str,
    )
    require_levels(
        tidy[["rater"]].set_axis([rater], axis=1), rater, role="rater", minimum=min_raters
    )
    require_levels(tidy[["case"]].set_axis([case], axis=1), case, role="case", minimum=2)
    pairs = resolve_contrasts(arms, reference, contrasts, arm)
    return PreparedArms(frame=tidy, arms=arms, contrasts=pairs, n_missing=n_missing)


def p_from_t(t: float, df: float, hypothesis: str) -> float:
    """P-value of ``t`` for ``hypothesis``: upper tail, or both for ``"two_sided"``.

    ``df = inf`` uses the standard normal distribution (Wald z).
    """
    dist = stats.norm if math.isinf(df) else stats.t(df)
    if hypothesis == "two_sided":
        return float(min(1.0, 2 * dist.sf(abs(t))))
    return float(dist.sf(t))


def check_options(
    method: str,
    hypothesis: str,
    margin: float,
    alpha: float,
    multiplicity: str,
    *,
    rater_by_arm: bool = False,
    engine: str = "studyhub",
) -> None:
    """Refuse unknown or inconsistent options of ``compare_arms``, naming the fix."""
    if method not in METHODS:
        raise DataError(f"method {method!r} is unknown; use one of {', '.join(METHODS)}")
    if hypothesis not in HYPOTHESES:
        raise DataError(f"hypothesis {hypothesis!r} is unknown; use one of {', '.join(HYPOTHESES)}")
    if multiplicity not in MULTIPLICITY_METHODS:
        raise DataError(
            f"multiplicity {multiplicity!r} is unknown; use one of "
            f"{', '.join(MULTIPLICITY_METHODS)}"
        )
    if not (isinstance(alpha, int | float) and 0 < alpha < 0.5):
        raise DataError(f"alpha is {alpha!r}; pass a significance level between 0 and 0.5")
    if not (isinstance(margin, int | float) and math.isfinite(margin) and margin >= 0):
        raise DataError(
            f"margin is {margin!r}; pass a non-negative number on the rating scale "
            "(the non-inferiority margin)"
        )
    if hypothesis == "non_inferiority" and margin == 0:
        raise DataError(
            "hypothesis='non_inferiority' with margin=0 is a superiority test; pass the "
            "pre-registered margin (> 0) or hypothesis='superiority'"
        )
    if hypothesis != "non_inferiority" and margin != 0:
        raise DataError(
            f"margin={margin!r} is only used with hypothesis='non_inferiority' (got "
            f"{hypothesis!r}); drop the margin or change the hypothesis"
        )
    if hypothesis == "non_inferiority" and method == "ordinal":
        raise DataError(
            "the non-inferiority margin is on the rating scale but method='ordinal' estimates "
            "log odds ratios; use method='mixed_model' or 'cluster_bootstrap' for "
            "non-inferiority"
        )
    if rater_by_arm and method != "mixed_model":
        raise DataError(
            f"rater_by_arm=True applies to method='mixed_model' only (got {method!r}); "
            "drop it or use the mixed model"
        )
    if engine not in ENGINES:
        raise DataError(f"engine {engine!r} is unknown; use one of {', '.join(ENGINES)}")
    if engine != "studyhub" and method != "mixed_model":
        raise DataError(
            f"engine={engine!r} applies to method='mixed_model' only (got {method!r}); "
            "drop engine= or use method='mixed_model'"
        )


@dataclass(frozen=True)
class IntervalLevel:
    """The interval a comparison reports: its coverage and whether it is one- or two-sided.

    ``sides = 1`` is the lower confidence bound ``[ci_low, inf)`` of a one-sided
    hypothesis (H1: difference above the null value); ``sides = 2`` an
    equal-tailed two-sided interval.
    """

    coverage: float
    sides: int

    @property
    def two_sided(self) -> float:
        """The two-sided level whose equal-tailed interval has this lower limit.

        A one-sided ``c`` lower bound is the lower limit of the equal-tailed
        two-sided ``2 c - 1`` interval, so every method computes its usual
        interval at this level and a one-sided result keeps its lower limit.
        """
        return self.coverage if self.sides == 2 else 2 * self.coverage - 1


def interval_level(
    hypothesis: str, alpha: float, confidence: float | None, sides: int | None
) -> IntervalLevel:
    """The coverage and sidedness of the intervals of ``compare_arms``.

    Parameters
    ----------
    hypothesis : {"superiority", "non_inferiority", "two_sided"}
        The hypothesis tested.
    alpha : float
        Significance level of the test.
    confidence : float or None
        Coverage of the reported interval. ``None`` keeps the historical default:
        a two-sided ``1 - alpha`` interval for ``"two_sided"`` and a two-sided
        ``1 - 2 alpha`` interval for the one-sided hypotheses (whose lower limit
        is the one-sided ``1 - alpha`` bound).
    sides : {1, 2} or None
        1: a one-sided lower bound; 2: a two-sided interval. ``None``: one-sided
        for a one-sided hypothesis when ``confidence`` is given, else two-sided.

    Returns
    -------
    IntervalLevel

    Raises
    ------
    DataError
        For a coverage outside (0, 1), sides other than 1 or 2, or a one-sided
        bound asked of a two-sided hypothesis.
    """
    if sides is not None and sides not in (1, 2):
        raise DataError(f"sides is {sides!r}; pass 1 (a lower confidence bound) or 2")
    if sides == 1 and hypothesis == "two_sided":
        raise DataError(
            "sides=1 asks for a lower confidence bound but hypothesis='two_sided' tests both "
            "directions; pass sides=2 or a one-sided hypothesis"
        )
    if confidence is not None and not (
        isinstance(confidence, int | float) and 0.5 < confidence < 1
    ):
        raise DataError(
            f"confidence is {confidence!r}; pass the coverage of the intervals, above 0.5 "
            "and below 1 (e.g. 0.95)"
        )
    one_sided = hypothesis != "two_sided"
    if sides is None:
        sides = 1 if (one_sided and confidence is not None) else 2
    if confidence is None:
        confidence = 1 - 2 * alpha if (one_sided and sides == 2) else 1 - alpha
    return IntervalLevel(coverage=float(confidence), sides=sides)


def t_quantile(confidence: float, df: float) -> float:
    """Two-sided ``confidence`` quantile of t with ``df`` (normal when ``df = inf``)."""
    q = 0.5 + confidence / 2
    return float(stats.norm.ppf(q) if math.isinf(df) else stats.t.ppf(q, df))


def contrast_row(
    a: Any,
    b: Any,
    est: float,
    se: float,
    df: float,
    stat: float,
    lo: float,
    hi: float,
    p: float,
) -> dict[str, Any]:
    """One row of the contrast table (``p_adjusted`` and ``reject`` are added later)."""
    return {
        "contrast": f"{a} - {b}",
        "arm": a,
        "versus": b,
        "estimate": est,
        "se": se,
        "df": df,
        "statistic": stat,
        "ci_low": lo,
        "ci_high": hi,
        "p_value": p,
    }
