"""Two-way cluster bootstrap of arm differences in rater x case designs.

Ratings in a reader study are correlated within raters (a rater's severity,
her benefit from an explanation) and within cases (a case's difficulty), so
resampling rows, or only raters, or only cases, understates the uncertainty.
The two-way ("pigeonhole") bootstrap resamples raters and cases
independently, and every resampled rater x case cell keeps all its rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from studyhub.errors import DataError
from studyhub.stats._data import (
    as_python,
    require_columns,
    require_levels,
    require_numeric,
    require_variation,
)

__all__ = [
    "ClusterBootstrap",
    "cluster_bootstrap",
    "resampled_means",
    "two_way_bootstrap_differences",
]


@dataclass(frozen=True)
class ClusterBootstrap:
    """Result of :func:`cluster_bootstrap`.

    Attributes
    ----------
    contrasts : pandas.DataFrame
        ``contrast``, ``arm``, ``versus``, ``estimate`` (observed difference of
        arm means, ``arm - versus``), ``se`` (standard deviation of the
        replicates), ``ci_low``, ``ci_high`` (percentile interval), ``bias``
        (mean of replicates minus estimate).
    replicates : numpy.ndarray
        Shape ``(n_boot, n_contrasts)``: the bootstrap differences.
    n_boot, seed : int
    confidence : float
    statistic : str
    n_raters, n_cases : int
    """

    contrasts: pd.DataFrame
    replicates: np.ndarray
    n_boot: int
    seed: int
    confidence: float
    statistic: str
    n_raters: int
    n_cases: int


def _cell_arrays(frame: pd.DataFrame, arms: list[Any]) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Dense (arm, rater, case) arrays of rating sums and counts."""
    a = pd.Categorical(frame["arm"], categories=arms).codes
    r, raters = pd.factorize(frame["rater"])
    c, cases = pd.factorize(frame["case"])
    shape = (len(arms), len(raters), len(cases))
    flat = np.ravel_multi_index((a, r, c), shape)
    size = int(np.prod(shape))
    sums = np.bincount(flat, weights=frame["y"].to_numpy(dtype=float), minlength=size)
    counts = np.bincount(flat, minlength=size).astype(float)
    return sums.reshape(shape), counts.reshape(shape), len(raters), len(cases)


def two_way_bootstrap_differences(
    sums: np.ndarray,
    counts: np.ndarray,
    pairs: Sequence[tuple[int, int]],
    *,
    n_boot: int,
    rng: np.random.Generator,
    chunk_cells: int = 2_000_000,
) -> np.ndarray:
    """Bootstrap differences of arm means from dense cell sums and counts.

    Parameters
    ----------
    sums, counts : numpy.ndarray
        Shape ``(n_arms, n_raters, n_cases)``: sum and number of ratings per
        cell; or ``(n_studies, n_arms, n_raters, n_cases)`` to bootstrap many
        (simulated) studies at once.
    pairs : sequence of (int, int)
        Arm indices ``(a, b)``; each replicate is ``mean_a - mean_b``.
    n_boot : int
        Number of resamples.
    rng : numpy.random.Generator
    chunk_cells : int
        Bound on ``n_studies x resamples x n_cases`` held at once (memory).

    Returns
    -------
    numpy.ndarray
        Shape ``(n_boot, len(pairs))``, or ``(n_studies, n_boot, len(pairs))``.

    Notes
    -----
    Drawing raters and cases with replacement is the same as giving rater ``r``
    the multiplicity ``w_r ~ Multinomial(R, 1/R)`` and case ``c`` the
    multiplicity ``v_c ~ Multinomial(C, 1/C)``; a cell then appears ``w_r v_c``
    times with all its rows. An arm's resampled mean is therefore
    ``w' S_a v / w' N_a v``, two small matrix products per resample: no
    rows are copied. Equal to explicit index gathering (tested).

    References
    ----------
    .. [1] Owen AB (2007). The pigeonhole bootstrap. Annals of Applied
       Statistics 1(2):386-411.
    """
    batched = sums.ndim == 4
    s4 = sums if batched else sums[None]
    n4 = counts if batched else counts[None]
    n_studies, _, n_r, n_c = s4.shape
    out = np.empty((n_studies, n_boot, len(pairs)))
    used = sorted({i for pair in pairs for i in pair})
    pos = {a: k for k, a in enumerate(used)}
    step = max(1, min(n_boot, int(chunk_cells // max(1, n_studies * n_c))))
    for start in range(0, n_boot, step):
        b = min(step, n_boot - start)
        w = rng.multinomial(n_r, np.full(n_r, 1.0 / n_r), size=(n_studies, b)).astype(float)
        v = rng.multinomial(n_c, np.full(n_c, 1.0 / n_c), size=(n_studies, b)).astype(float)
        means = {a: resampled_means(s4[:, a], n4[:, a], w, v) for a in used}
        for k, (i, j) in enumerate(pairs):
            out[:, start : start + b, k] = means[used[pos[i]]] - means[used[pos[j]]]
    return out if batched else out[0]


def resampled_means(
    sums: np.ndarray, counts: np.ndarray, w: np.ndarray, v: np.ndarray
) -> np.ndarray:
    """Mean rating of one arm in each resample, from rater and case multiplicities.

    ``sums``/``counts`` have shape ``(S, R, C)``, ``w`` ``(S, B, R)`` and ``v``
    ``(S, B, C)``; returns ``(S, B)``: ``(w S v) / (w N v)``, equal to the mean
    of the rows of the resampled data (each rater x case cell repeated
    ``w_r v_c`` times with all its rows). NaN where the arm has no rows
    (:func:`cluster_bootstrap` refuses those). Checked against explicit
    resampling of rows on unbalanced data with repeated and empty cells.

    References
    ----------
    .. [1] Owen AB (2007). The pigeonhole bootstrap. Annals of Applied
       Statistics 1(2):386-411.
    """
    total = np.einsum("sbc,sbc->sb", w @ sums, v)
    n = np.einsum("sbc,sbc->sb", w @ counts, v)
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / n


def cluster_bootstrap(
    data: pd.DataFrame,
    *,
    arm: str,
    rating: str,
    rater: str,
    case: str,
    reference: Any = None,
    contrasts: Sequence[tuple[Any, Any]] | None = None,
    statistic: str = "mean_difference",
    n_boot: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> ClusterBootstrap:
    """Two-way cluster bootstrap confidence intervals for differences between arms.

    Parameters
    ----------
    data : pandas.DataFrame
        Long data, one row per rating.
    arm, rating, rater, case : str
        Column names; ``rating`` numeric.
    reference : optional
        Control arm; default contrasts are every other arm versus it.
    contrasts : sequence of (arm, versus), optional
        Explicit contrasts ``arm - versus``.
    statistic : {"mean_difference"}
        Difference of the arms' mean ratings over all their rows.
    n_boot : int
        Number of resamples (at least 100; 2000 or more for reported intervals).
    seed : int
        Seed of the random generator (record it in the plan).
    confidence : float
        Coverage of the two-sided percentile interval.

    Returns
    -------
    ClusterBootstrap

    Raises
    ------
    DataError
        For missing columns, unknown arms, constant ratings, fewer than two
        raters or cases, ``n_boot < 100``, or a resample in which an arm has
        no ratings (arms rated on too few cells).

    Notes
    -----
    Raters and cases are resampled independently and each resampled rater x
    case cell keeps all its rows, so correlation within raters, within cases
    and within cells is kept. The interval is the percentile interval. BCa is
    not offered: its acceleration needs a jackknife over a single sampling
    unit, and with two crossed units there is no agreed choice. The pigeonhole
    bootstrap is mildly conservative for the residual part of the variance
    (Owen 2007: the cell-level noise is counted about three times over
    ``R x C``), so where that noise dominates the interval is wide; and like
    any cluster bootstrap its percentile intervals run slightly narrow with few
    clusters: in our simulations with rater x arm and case x arm variation,
    nominal 95% intervals covered 93.4-93.9% with 20 raters x 30 cases and
    93.7-94.6% with 40 x 60. Prefer the mixed model as the primary analysis. Vectorised: 2000
    resamples of 20 raters x 300 cases x 4 arms take well under a second.
    Checked against explicit resampling of rows (identical replicates for the
    same multiplicities) and by simulation (coverage near the nominal level).

    References
    ----------
    .. [1] Owen AB (2007). The pigeonhole bootstrap. Annals of Applied
       Statistics 1(2):386-411.
    .. [2] Davison AC, Hinkley DV (1997). Bootstrap Methods and their
       Application. Cambridge University Press, sec. 3.8.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> ratings = pd.DataFrame(
    ...     [{"rater": f"r{r}", "case": f"c{c}", "arm": arm,
    ...       "score": float(np.clip(np.rint(3 + eff + rng.normal(0, 0.8)), 1, 5))}
    ...      for r in range(5) for c in range(20) for arm, eff in (("ig", 1.0), ("random", 0.0))])
    >>> boot = cluster_bootstrap(ratings, arm="arm", rating="score", rater="rater",
    ...                          case="case", reference="random", n_boot=500, seed=0)
    >>> boot.contrasts[["estimate", "ci_low", "ci_high"]].round(2).values.tolist()
    [[0.81, 0.53, 1.12]]
    """
    if statistic != "mean_difference":
        raise DataError(f"statistic {statistic!r} is unknown; use 'mean_difference'")
    if not (isinstance(n_boot, int | np.integer) and n_boot >= 100):
        raise DataError(f"n_boot is {n_boot!r}; pass an integer of at least 100 (2000 is usual)")
    if not (0 < confidence < 1):
        raise DataError(f"confidence is {confidence!r}; pass a coverage between 0 and 1")
    frame = require_columns(
        data, arm=arm, rating=rating, rater=rater, case=case, missing_ok=("rating",)
    )
    y = require_numeric(frame, rating, role="rating")
    keep = y.notna().to_numpy()
    tidy = pd.DataFrame(
        {
            "arm": frame[arm].to_numpy()[keep],
            "y": y.to_numpy()[keep],
            "rater": frame[rater].to_numpy()[keep],
            "case": frame[case].to_numpy()[keep],
        }
    )
    require_variation(tidy["y"], role="rating", column=rating)
    arms = sorted(
        map(as_python, require_levels(tidy[["arm"]].set_axis([arm], axis=1), arm, role="arm")),
        key=str,
    )
    require_levels(tidy[["rater"]].set_axis([rater], axis=1), rater, role="rater")
    require_levels(tidy[["case"]].set_axis([case], axis=1), case, role="case")
    pairs = resolve_contrasts(arms, reference, contrasts, arm)
    index = {a: i for i, a in enumerate(arms)}
    sums, counts, n_r, n_c = _cell_arrays(tidy, arms)
    means = sums.sum(axis=(1, 2)) / counts.sum(axis=(1, 2))
    rng = np.random.default_rng(seed)
    idx_pairs = [(index[a], index[b]) for a, b in pairs]
    reps = two_way_bootstrap_differences(sums, counts, idx_pairs, n_boot=n_boot, rng=rng)
    if np.isnan(reps).any():
        bad = int(np.isnan(reps).any(axis=1).sum())
        raise DataError(
            f"in {bad} of {n_boot} resamples an arm had no ratings (its ratings sit on too "
            "few raters or cases); rate every arm on more raters and cases, or compare "
            "only well-covered arms"
        )
    a_lo = (1 - confidence) / 2
    rows = []
    for k, (a, b) in enumerate(pairs):
        est = float(means[index[a]] - means[index[b]])
        draws = reps[:, k]
        rows.append(
            {
                "contrast": f"{a} - {b}",
                "arm": a,
                "versus": b,
                "estimate": est,
                "se": float(np.std(draws, ddof=1)),
                "ci_low": float(np.quantile(draws, a_lo)),
                "ci_high": float(np.quantile(draws, 1 - a_lo)),
                "bias": float(draws.mean() - est),
            }
        )
    return ClusterBootstrap(
        contrasts=pd.DataFrame(rows),
        replicates=reps,
        n_boot=int(n_boot),
        seed=int(seed),
        confidence=float(confidence),
        statistic=statistic,
        n_raters=n_r,
        n_cases=n_c,
    )


def resolve_contrasts(
    arms: list[Any],
    reference: Any,
    contrasts: Sequence[tuple[Any, Any]] | None,
    column: str,
) -> list[tuple[Any, Any]]:
    """Return the ``(arm, versus)`` pairs: explicit ``contrasts`` or every arm versus
    ``reference``; refuse unknown arms and self-comparisons with a DataError."""
    if contrasts is None:
        if reference is None:
            raise DataError(
                f"neither reference nor contrasts was given (arms are {arms}); pass "
                "reference=<control arm> or contrasts=[(arm, versus), ...]"
            )
        if reference not in arms:
            raise DataError(
                f"reference arm {reference!r} is not in column {column!r} (arms are {arms}); "
                "pass one of them"
            )
        return [(a, reference) for a in arms if a != reference]
    pairs: list[tuple[Any, Any]] = []
    for pair in contrasts:
        if not isinstance(pair, tuple | list) or len(pair) != 2:
            raise DataError(f"contrast {pair!r} is not a pair; pass [(arm, versus), ...]")
        for level in pair:
            if level not in arms:
                raise DataError(
                    f"contrast {tuple(pair)!r} names arm {level!r}, which is not in column "
                    f"{column!r} (arms are {arms}); use existing arms"
                )
        if pair[0] == pair[1]:
            raise DataError(f"contrast {tuple(pair)!r} compares an arm with itself; pass two arms")
        pairs.append((pair[0], pair[1]))
    if not pairs:
        raise DataError("contrasts is empty; pass at least one (arm, versus) pair")
    return pairs
