"""Helpers shared by the agreement statistics.

Option checks (``confidence``, ``n_boot``), the normal critical value, the
unit-resampling bootstrap (multinomial unit weights, chunking, percentile
interval), the interval for units nested in clusters (e.g. a case shown under
several arms): a delete-one-cluster jackknife on Fisher's z scale with t
quantiles, and the order and numeric scores of rating categories. Used by
:mod:`~studyhub.stats.icc`, :mod:`~studyhub.stats.kappa`,
:mod:`~studyhub.stats.krippendorff` and :mod:`~studyhub.stats.intra_rater`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from studyhub.errors import DataError
from studyhub.stats._data import as_python

__all__ = [
    "BOOT_CHUNK_CELLS",
    "FloatArray",
    "boot_chunks",
    "category_scores",
    "check_confidence",
    "check_n_boot",
    "cluster_jackknife_weights",
    "jackknife_t_interval",
    "multinomial_weights",
    "ordered_categories",
    "percentile_ci",
    "unit_clusters",
    "z_crit",
]

FloatArray = np.ndarray

BOOT_CHUNK_CELLS = 4_000_000  # floats held at once by a vectorised bootstrap chunk


def check_confidence(confidence: float) -> float:
    """Return ``confidence`` as a float, refusing a level outside (0, 1)."""
    if not isinstance(confidence, int | float) or not 0.0 < float(confidence) < 1.0:
        raise DataError(
            f"confidence is {confidence!r}; pass a level strictly between 0 and 1, e.g. 0.95"
        )
    return float(confidence)


def check_n_boot(n_boot: int) -> int:
    """Return ``n_boot`` as an int, refusing non-integers and fewer than 100 resamples."""
    if isinstance(n_boot, bool) or not isinstance(n_boot, int | np.integer) or n_boot < 100:
        raise DataError(
            f"n_boot is {n_boot!r}; pass an integer of at least 100 (2000 is the default)"
        )
    return int(n_boot)


def z_crit(confidence: float) -> float:
    """The standard normal quantile of a two-sided ``confidence`` interval."""
    return float(sps.norm.ppf(0.5 + confidence / 2.0))


def percentile_ci(boot: FloatArray, confidence: float, what: str) -> tuple[float, float, int]:
    """Percentile interval of the finite bootstrap replicates."""
    finite = boot[np.isfinite(boot)]
    if finite.size < 0.9 * boot.size:
        raise DataError(
            f"{what} is undefined in {boot.size - finite.size} of {boot.size} bootstrap "
            "resamples (too few units or too little variation for a bootstrap); "
            "collect more units or report the estimate without an interval"
        )
    tail = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(finite, [tail, 1.0 - tail])
    return float(lo), float(hi), int(finite.size)


def multinomial_weights(rng: np.random.Generator, n_units: int, n_boot: int) -> FloatArray:
    """``n_boot`` x ``n_units`` counts: how often each unit is drawn in each resample."""
    return rng.multinomial(n_units, np.full(n_units, 1.0 / n_units), size=n_boot).astype(float)


def unit_clusters(
    frame: pd.DataFrame, units: str, clusters: str, labels: Sequence[object] | pd.Index
) -> FloatArray:
    """Cluster code of each unit in ``labels`` (the order of the units' statistics).

    Refuses a missing cluster label and a unit whose rows name more than one
    cluster, with a DataError naming the unit.
    """
    if clusters not in frame.columns:
        raise DataError(
            f"column(s) clusters={clusters!r} not in the data frame (columns: "
            f"{list(map(str, frame.columns))[:10]}); pass the column that groups the units"
        )
    if frame[clusters].isna().any():
        bad = as_python(frame.loc[frame[clusters].isna(), units].iloc[0])
        raise DataError(
            f"clusters column {clusters!r} is missing for {units}={bad!r}; give every unit "
            "its cluster (e.g. its case)"
        )
    unit_codes, unit_labels = pd.factorize(frame[units])
    cluster_codes, _ = pd.factorize(frame[clusters])
    pairs = np.unique(unit_codes.astype(np.int64) * (cluster_codes.max() + 1) + cluster_codes)
    per_unit = np.bincount(pairs // (cluster_codes.max() + 1), minlength=len(unit_labels))
    if (per_unit > 1).any():
        bad = as_python(unit_labels[int(np.argmax(per_unit > 1))])
        found = sorted(map(str, frame.loc[frame[units] == bad, clusters].unique()))
        raise DataError(
            f"{units}={bad!r} lies in {len(found)} clusters ({found[:5]}); each unit must "
            f"belong to one cluster of column {clusters!r}"
        )
    of_unit = np.empty(len(unit_labels), dtype=np.int64)
    of_unit[pairs // (cluster_codes.max() + 1)] = pairs % (cluster_codes.max() + 1)
    wanted = pd.Index(unit_labels).get_indexer(pd.Index(labels))
    codes, _ = pd.factorize(of_unit[wanted])
    return codes.astype(np.intp)


def cluster_jackknife_weights(unit_cluster: FloatArray) -> FloatArray:
    """``n_clusters`` x ``n_units`` weights: row ``c`` leaves out every unit of cluster ``c``."""
    n_clusters = int(unit_cluster.max()) + 1
    return (unit_cluster[None, :] != np.arange(n_clusters)[:, None]).astype(float)


def _fisher_z(values: FloatArray, raters: float | None) -> FloatArray:
    """Fisher's z of an intraclass-type coefficient: ``0.5 log((1 + (k-1) r) / (1 - r))``
    for one rater's agreement with ``k`` raters per unit, ``-0.5 log(1 - r)`` for the
    agreement of the mean of the raters (``raters=None``); NaN outside the domain."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if raters is None:
            return np.where(values < 1.0, -0.5 * np.log1p(-values), np.nan)
        ok = (values < 1.0) & (values > -1.0 / (raters - 1.0))
        return np.where(ok, 0.5 * np.log((1.0 + (raters - 1.0) * values) / (1.0 - values)), np.nan)


def _fisher_r(z: float, raters: float | None) -> float:
    """Inverse of :func:`_fisher_z`."""
    if raters is None:
        return float(-np.expm1(-2.0 * z))
    e = float(np.exp(2.0 * z))
    return (e - 1.0) / (e + raters - 1.0) if np.isfinite(e) else 1.0


def jackknife_t_interval(
    estimate: float,
    leave_out: FloatArray,
    *,
    raters: float | None,
    confidence: float,
    what: str,
) -> tuple[float, float, str]:
    """Interval from the delete-one-cluster jackknife: ``z -/+ t(C-1) se_jack`` back-transformed.

    ``leave_out[c]`` is the statistic without cluster ``c``; ``z`` is Fisher's
    transform for ``raters`` raters per unit (see :func:`_fisher_z`). Where the
    estimate or a leave-one-out value lies outside the transform's domain (perfect
    agreement, or below ``-1/(k-1)``), the interval is formed on the raw scale.
    Returns the limits and the scale used (``"fisher z"`` or ``"raw"``).
    """
    n_clusters = leave_out.size
    if n_clusters < 3:
        raise DataError(
            f"{what} has {n_clusters} cluster(s); an interval over clusters needs at least 3; "
            "collect more cases"
        )
    if not np.isfinite(leave_out).all():
        bad = int((~np.isfinite(leave_out)).sum())
        raise DataError(
            f"{what} is undefined when {bad} of the {n_clusters} clusters are left out in turn "
            "(too little variation left); collect more cases or report the estimate without "
            "an interval"
        )
    q = float(sps.t.ppf(0.5 + confidence / 2.0, n_clusters - 1))
    z = _fisher_z(np.append(leave_out, estimate), raters)
    scale = "fisher z" if np.isfinite(z).all() else "raw"
    values = z if scale == "fisher z" else np.append(leave_out, estimate)
    centre, drops = float(values[-1]), values[:-1]
    se = float(np.sqrt((n_clusters - 1) / n_clusters * ((drops - drops.mean()) ** 2).sum()))
    low, high = centre - q * se, centre + q * se
    if scale == "fisher z":
        return _fisher_r(low, raters), _fisher_r(high, raters), scale
    return low, high, scale


def boot_chunks(n_boot: int, cells_per_replicate: int) -> list[slice]:
    """Slices of ``range(n_boot)`` small enough to hold ``BOOT_CHUNK_CELLS`` floats at once."""
    size = max(1, BOOT_CHUNK_CELLS // max(1, cells_per_replicate))
    return [slice(i, min(i + size, n_boot)) for i in range(0, n_boot, size)]


def ordered_categories(
    values: pd.Series, categories: Sequence[object] | None, *, column: str
) -> list[object]:
    """The category order: as given, an ordered categorical's order, or sorted values."""
    observed = list(pd.unique(values.dropna()).tolist())
    if categories is not None:
        cats = list(categories)
        unknown = [v for v in observed if v not in cats]
        if unknown:
            raise DataError(
                f"ratings column {column!r} holds value(s) {unknown[:5]} that are not in "
                f"categories={cats}; add them to categories or recode the ratings"
            )
        return cats
    if isinstance(values.dtype, pd.CategoricalDtype) and values.dtype.ordered:
        return [c for c in values.dtype.categories if c in set(observed)]
    try:
        return sorted(observed)
    except TypeError:
        return observed


def category_scores(cats: Sequence[object]) -> FloatArray:
    """Numeric scores of the categories: their values when numeric, else their ranks."""
    try:
        return np.asarray([float(c) for c in cats])  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return np.arange(len(cats), dtype=float)
