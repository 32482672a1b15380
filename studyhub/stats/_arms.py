"""The input side of :func:`studyhub.stats.compare.compare_arms`.

Checks the options (method, hypothesis, margin, alpha, multiplicity, engine,
the mixed model's random interactions), turns the user's data frame into tidy
``arm, y, rater, case`` columns with the contrasts resolved (refusing repeated
readings and ratings that do not vary within any arm), checks that the design
can estimate the random interactions asked for, resolves the level and
sidedness of the intervals (:func:`interval_level`), and formats one contrast
row of the result table with its t or normal p-value and interval.
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
    _rows,
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
    "random_terms",
    "require_estimable",
    "require_model_sizes",
    "t_quantile",
]

#: The random interactions of the mixed model, as ``compare_arms`` options.
TERMS = ("rater_by_arm", "case_by_arm", "rater_by_case")
#: Fewest raters (cases) for a rater x arm (case x arm) variance: with 2, each
#: contrast's error term has a single degree of freedom per arm pair.
MIN_LEVELS = 3

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
    _require_single_readings(frame, arm=arm, rater=rater, case=case)
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
    _require_variation_within_arms(tidy, rating=rating, arm=arm)
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


def _require_single_readings(frame: pd.DataFrame, *, arm: str, rater: str, case: str) -> None:
    """Refuse two rows for one (rater, case, arm): a repeated or superseded reading."""
    dup = frame.duplicated([rater, case, arm], keep=False).to_numpy()
    if not dup.any():
        return
    first = frame.loc[dup].iloc[0]
    key = f"{rater}={as_python(first[rater])!r}, {case}={as_python(first[case])!r}, " + (
        f"{arm}={as_python(first[arm])!r}"
    )
    n_keys = int(frame.loc[dup, [rater, case, arm]].drop_duplicates().shape[0])
    raise DataError(
        f"{n_keys} (rater, case, arm) combination(s) have more than one rating "
        f"({_rows(list(frame.index[dup]))}; e.g. {key}); keep one rating per rater, case "
        "and arm: drop repeat readings (they belong to the intra-rater analysis) and "
        "superseded answers"
    )


def _require_variation_within_arms(tidy: pd.DataFrame, *, rating: str, arm: str) -> None:
    """Refuse ratings that are constant within every arm: no variance, no test."""
    spread = tidy.groupby("arm", sort=False)["y"].agg(["min", "max"])
    if (spread["min"] == spread["max"]).all():
        shown = ", ".join(f"{as_python(a)!r}: {v:g}" for a, v in spread["min"].head(5).items())
        raise DataError(
            f"rating column {rating!r} is constant within each arm of {arm!r} ({shown}), so "
            "the ratings have no variance left to test the arm differences against; check "
            "that the right column was passed"
        )


def random_terms(
    method: str,
    *,
    rater_by_arm: bool | None,
    case_by_arm: bool | None,
    rater_by_case: bool | None,
) -> dict[str, bool]:
    """The mixed model's random interactions (all on unless switched off), or ``{}``.

    Refuses an explicit choice with a method other than ``"mixed_model"``.
    """
    given = {"rater_by_arm": rater_by_arm, "case_by_arm": case_by_arm}
    given["rater_by_case"] = rater_by_case
    if method != "mixed_model":
        for name, value in given.items():
            if value is not None:
                raise DataError(
                    f"{name}={value!r} applies to method='mixed_model' only (got {method!r}); "
                    "drop it or use the mixed model"
                )
        return {}
    for name, value in given.items():
        if value is not None and not isinstance(value, bool):
            raise DataError(f"{name} is {value!r}; pass True or False")
    return {name: True if value is None else value for name, value in given.items()}


def require_model_sizes(terms: dict[str, bool], *, n_raters: int, n_cases: int) -> None:
    """Refuse fewer raters (cases) than a rater x arm (case x arm) variance needs."""
    for term, role, count in (
        ("rater_by_arm", "raters", n_raters),
        ("case_by_arm", "cases", n_cases),
    ):
        if terms.get(term) and count < MIN_LEVELS:
            what = "raters differ in their benefit" if role == "raters" else "cases differ"
            raise DataError(
                f"the mixed model with a random {term.replace('_by_', ' x ')} intercept "
                f"needs at least {MIN_LEVELS} {role} to estimate how much {what} from arm "
                f"to arm, but has {count}; add {role}, or pass {term}=False for an "
                f"analysis conditional on these {role} (a sensitivity analysis, not a "
                "primary one)"
            )


def require_estimable(frame: pd.DataFrame, terms: dict[str, bool]) -> dict[str, bool]:
    """Check that the design separates each random interaction from its neighbours.

    A rater x arm variance needs raters who read more than one arm (else it is
    the rater variance) and some rater who read an arm on more than one case
    (else it is the residual); likewise for case x arm. A rater x case variance
    needs some rater who read a case under more than one arm; where none did
    (each rater saw each case under one arm) it cannot be told from the
    residual, whose variance then includes it, and the model is the same
    without it: ``rater_by_case`` is switched off. Returns the terms fitted.
    """
    counts = {
        "raters": int(frame["rater"].nunique()),
        "cases": int(frame["case"].nunique()),
    }
    require_model_sizes(terms, n_raters=counts["raters"], n_cases=counts["cases"])
    for term, unit, role in (("rater_by_arm", "rater", "raters"), ("case_by_arm", "case", "cases")):
        if not terms.get(term):
            continue
        label = term.replace("_by_", " x ")
        arms_per = frame.groupby(unit, sort=False)["arm"].nunique()
        if arms_per.max() < 2:
            raise DataError(
                f"no {unit} has ratings under more than one arm, so the {label} variance "
                f"cannot be told apart from the {unit} variance: each of the "
                f"{counts[role]} {role} saw one arm only; use a design where {role} see "
                f"several arms, or pass {term}=False"
            )
        cells = frame.groupby([unit, "arm"], sort=False).size()
        if cells.max() < 2:
            other = "case" if unit == "rater" else "rater"
            raise DataError(
                f"every {unit} x arm cell has one rating only ({len(cells)} cells), so the "
                f"{label} variance cannot be told apart from the residual variance; have each "
                f"{unit} rated by at least 2 {other}s under each arm (a fully crossed design), "
                f"or pass {term}=False"
            )
    fitted = dict(terms)
    if terms.get("rater_by_case") and not frame.duplicated(["rater", "case"]).any():
        fitted["rater_by_case"] = False
    return fitted
