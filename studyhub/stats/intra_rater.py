"""Intra-rater (test–retest) agreement on repeat items, per rater and pooled."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from studyhub.errors import DataError
from studyhub.stats._agreement_common import (
    FloatArray,
    boot_chunks,
    category_scores,
    check_confidence,
    check_n_boot,
    cluster_jackknife_weights,
    jackknife_t_interval,
    multinomial_weights,
    ordered_categories,
    percentile_ci,
    unit_clusters,
    z_crit,
)
from studyhub.stats._data import require_columns, require_levels, require_numeric, require_unique
from studyhub.stats.icc import _icc_from_matrix
from studyhub.stats.kappa import (
    KappaWeights,
    _check_weights,
    _kappa_from_table,
    _kappa_vectorised,
    _weight_matrix,
)

__all__ = ["IntraRaterResult", "intra_rater_agreement"]


@dataclass(frozen=True)
class IntraRaterResult:
    """Agreement between the first and the repeat reading of the same items.

    ``estimate`` / ``ci_low`` / ``ci_high`` are pooled over raters (item-clustered
    percentile bootstrap interval). ``per_rater`` is indexed by rater with
    columns ``n_items``, ``estimate``, ``ci_low``, ``ci_high`` (asymptotic
    intervals) and ``note``, which says why a rater's value is missing when it
    is undefined (e.g. a rater who gave one category in both readings).
    ``interval`` says how the pooled interval was formed: ``"percentile
    bootstrap"`` over items, or ``"cluster jackknife"`` over the ``n_clusters``
    clusters of items (``n_boot_used`` 0).
    """

    estimate: float
    ci_low: float
    ci_high: float
    method: str
    weights: str | None
    per_rater: pd.DataFrame
    n_raters: int
    n_items: int
    n_pairs: int
    confidence: float
    n_boot: int
    n_boot_used: int
    seed: int
    n_clusters: int | None = None
    interval: str = "percentile bootstrap"


def _icc_a1_from_sums(sums: FloatArray) -> FloatArray:
    """ICC(A,1) of two readings from [count, Sx, Sy, Sxx, Syy, Sxy] (rows = resamples)."""
    cnt, sx, sy, sxx, syy, sxy = sums.T
    with np.errstate(divide="ignore", invalid="ignore"):
        grand = (sx + sy) / (2.0 * cnt)
        ss_total = sxx + syy - 2.0 * cnt * grand**2
        ss_rows = (sxx + syy + 2.0 * sxy) / 2.0 - 2.0 * cnt * grand**2
        ss_cols = cnt * ((sx / cnt - grand) ** 2 + (sy / cnt - grand) ** 2)
        ss_err = ss_total - ss_rows - ss_cols
        ms_rows, ms_cols, ms_err = ss_rows / (cnt - 1), ss_cols, ss_err / (cnt - 1)
        return (ms_rows - ms_err) / (ms_rows + ms_err + 2.0 * (ms_cols - ms_err) / cnt)


def _repeat_levels(frame: pd.DataFrame, repeat: str, first: object | None) -> tuple[object, object]:
    levels = require_levels(frame, repeat, role="repeat")
    if len(levels) != 2:
        raise DataError(
            f"repeat column {repeat!r} has {len(levels)} distinct values ({levels[:5]}); "
            "intra-rater agreement compares exactly 2 readings (first and repeat); "
            "filter the data to two readings"
        )
    if first is None:
        try:
            first = sorted(levels)[0]  # type: ignore[type-var]  # False < True, 1 < 2
        except TypeError:
            raise DataError(
                f"repeat column {repeat!r} has values {levels} that cannot be ordered; "
                "pass first= naming the value of the first reading"
            ) from None
    if first not in levels:
        raise DataError(
            f"first={first!r} is not a value of repeat column {repeat!r} ({levels}); "
            "pass the value that marks the first reading"
        )
    second = levels[1] if levels[0] == first else levels[0]
    return first, second


def intra_rater_agreement(
    data: pd.DataFrame,
    *,
    items: str,
    raters: str,
    ratings: str,
    repeat: str,
    first: object | None = None,
    method: Literal["kappa", "icc"] = "kappa",
    weights: KappaWeights = "quadratic",
    categories: Sequence[object] | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
    clusters: str | None = None,
) -> IntraRaterResult:
    """Intra-rater (test–retest) agreement on repeat items, per rater and pooled.

    Parameters
    ----------
    data : pandas.DataFrame
        Long data, one row per reading. Items read only once by a rater (the
        usual case: only some items are repeat items) are left out; a rater's
        item counts when both readings are present.
    items, raters, ratings : str
        Columns naming the item (e.g. the stimulus), the rater and the rating.
    repeat : str
        Column marking the reading: exactly two values, e.g. ``False``/``True``
        (is this the repeat?) or ``1``/``2`` (reading number).
    first : optional
        Value of ``repeat`` that marks the first reading. Default: the smaller
        value (``False`` before ``True``, ``1`` before ``2``).
    method : {"kappa", "icc"}, default "kappa"
        ``"kappa"``: Cohen's kappa between the two readings, weighted by
        ``weights`` (for ordinal or nominal scales). ``"icc"``: ICC(A,1),
        two-way, absolute agreement, single measurement (for continuous scales).
    weights : {"quadratic", "linear", None}, default "quadratic"
        Kappa weights (see :func:`cohen_kappa`); ignored for ``method="icc"``.
    categories : sequence, optional
        The full ordered scale for kappa; default the observed values, sorted.
    n_boot, seed : int
        Bootstrap resamples (at least 100) and seed for the pooled interval.
    confidence : float, default 0.95
        Level of all intervals.
    clusters : str, optional
        Column grouping the items into independent clusters (e.g. the case
        when an item is a case shown under one arm): the pooled interval then
        leaves out one cluster at a time with all its items (a cluster
        jackknife on Fisher's z scale for two readings, as in
        :func:`cohen_kappa`); ``n_boot`` and ``seed`` are not used.

    Returns
    -------
    IntraRaterResult
        Pooled ``estimate``, ``ci_low``, ``ci_high``; ``per_rater`` table;
        ``n_raters``, ``n_items`` (distinct repeat items), ``n_pairs``
        (rater x item pairs of readings).

    Raises
    ------
    DataError
        Missing columns, a repeat column without exactly two values, a reading
        recorded twice, no item read twice by the same rater, a pooled value
        that is undefined (constant ratings), or an item in more than one
        cluster.

    Notes
    -----
    Reader studies report intra-reader reproducibility per reader and over
    readers: weighted kappa for ordinal scales — quadratic weights by default,
    which make kappa equivalent to an ICC (Fleiss & Cohen 1973) — and
    ICC(A,1) for continuous ones (Koo & Li 2016). Per rater, kappa comes with
    its Fleiss–Cohen–Everitt asymptotic interval and ICC(A,1) with the McGraw &
    Wong interval. The pooled value is computed on all pairs of readings
    together (one agreement table, or one ICC with the pairs as targets);
    since pairs from different raters on one item are correlated, its
    interval is a percentile bootstrap that resamples **items** with all their
    raters' pairs.

    Validated by construction: per-rater values equal :func:`cohen_kappa`
    (checked against SAS PROC FREQ) and ICC2 of :func:`icc` (checked against
    R psych) on that rater's pairs, and the pooled value equals them on all
    pairs, to 1e-12 in the tests.

    References
    ----------
    .. [1] Fleiss JL, Cohen J (1973). The equivalence of weighted kappa and the
       intraclass correlation coefficient as measures of reliability.
       Educational and Psychological Measurement 33:613-619.
    .. [2] Koo TK, Li MY (2016). A guideline of selecting and reporting
       intraclass correlation coefficients for reliability research.
       J Chiropr Med 15(2):155-163.
    .. [3] Kottner J, Audigé L, Brorson S, et al. (2011). Guidelines for
       Reporting Reliability and Agreement Studies (GRRAS) were proposed.
       J Clin Epidemiol 64(1):96-106.
    """
    if method not in ("kappa", "icc"):
        raise DataError(f"method is {method!r}; pass 'kappa' (ordinal scales) or 'icc'")
    weights = _check_weights(weights) if method == "kappa" else None
    confidence = check_confidence(confidence)
    n_boot = check_n_boot(n_boot)
    frame = require_columns(
        data,
        items=items,
        raters=raters,
        ratings=ratings,
        repeat=repeat,
        clusters=clusters,
        missing_ok=("ratings",),
    )
    if len({items, raters, ratings, repeat}) != 4:
        raise DataError(
            f"items={items!r}, raters={raters!r}, ratings={ratings!r}, repeat={repeat!r} "
            "must be four different columns"
        )
    frame = frame[frame[ratings].notna()]
    first_level, second_level = _repeat_levels(frame, repeat, first)
    require_unique(
        frame,
        [items, raters, repeat],
        what=f"({items}, {raters}, {repeat}) readings",
        fix="each rater reads an item at most once per reading; drop the duplicates",
    )
    if method == "icc":
        frame = frame.assign(**{ratings: require_numeric(frame, ratings, role="ratings")})
    wide = frame.pivot(index=[raters, items], columns=repeat, values=ratings).dropna()
    if wide.empty:
        raise DataError(
            f"no item has both readings ({repeat}={first_level!r} and {second_level!r}) by "
            "the same rater; intra-rater agreement needs repeat items; check the repeat column"
        )
    a = wide[first_level]
    b = wide[second_level]
    rater_of = wide.index.get_level_values(0)
    item_codes, item_labels = pd.factorize(wide.index.get_level_values(1))
    n_items = len(item_labels)
    zc = z_crit(confidence)
    rows: dict[object, dict[str, object]] = {}

    if method == "kappa":
        require_levels(frame, ratings, role="ratings")
        cats = ordered_categories(frame[ratings], categories, column=ratings)
        index = {c: i for i, c in enumerate(cats)}
        ia, ib = a.map(index).to_numpy(int), b.map(index).to_numpy(int)
        w = _weight_matrix(category_scores(cats), weights)
        n_cat = len(cats)
        for rater in pd.unique(rater_of):
            sel = np.asarray(rater_of == rater)
            counts = np.zeros((n_cat, n_cat))
            np.add.at(counts, (ia[sel], ib[sel]), 1.0)
            kappa, ase, _, _ = _kappa_from_table(counts, w)
            note = "" if np.isfinite(kappa) else "undefined: one category in both readings"
            rows[rater] = {
                "n_items": int(sel.sum()),
                "estimate": kappa,
                "ci_low": kappa - zc * ase,
                "ci_high": kappa + zc * ase,
                "note": note,
            }
        per_item = np.zeros((n_items, n_cat * n_cat))
        np.add.at(per_item, (item_codes, ia * n_cat + ib), 1.0)

        def pooled(wts: FloatArray) -> FloatArray:
            return _kappa_vectorised((wts @ per_item).reshape(-1, n_cat, n_cat), w)

        cells = n_cat * n_cat * 3
    else:
        xa, xb = a.to_numpy(float), b.to_numpy(float)
        for rater in pd.unique(rater_of):
            sel = np.asarray(rater_of == rater)
            row: dict[str, object] = {"n_items": int(sel.sum())}
            try:
                if sel.sum() < 2:
                    raise DataError("fewer than 2 repeat items")
                table, _ = _icc_from_matrix(np.column_stack([xa[sel], xb[sel]]), confidence)
                icc2 = table.loc["ICC2"].to_dict()
                row.update(
                    estimate=float(icc2["estimate"]),
                    ci_low=float(icc2["ci_low"]),
                    ci_high=float(icc2["ci_high"]),
                    note="",
                )
            except DataError as err:
                row.update(
                    estimate=np.nan,
                    ci_low=np.nan,
                    ci_high=np.nan,
                    note=f"undefined: {str(err).split(';')[0]}",
                )
            rows[rater] = row
        stats_ = np.column_stack([np.ones_like(xa), xa, xb, xa**2, xb**2, xa * xb])
        per_item = np.zeros((n_items, 6))
        np.add.at(per_item, item_codes, stats_)

        def pooled(wts: FloatArray) -> FloatArray:
            return _icc_a1_from_sums(wts @ per_item)

        cells = 12

    estimate = float(pooled(np.ones((1, n_items)))[0])
    if not np.isfinite(estimate):
        raise DataError(
            f"the pooled intra-rater {method} is undefined: the ratings in the "
            f"{len(wide)} pairs of readings do not vary; check the ratings column"
        )
    interval, in_cluster = "percentile bootstrap", None
    if clusters is None:
        rng = np.random.default_rng(seed)
        boot = np.empty(n_boot)
        for part in boot_chunks(n_boot, n_items + cells):
            boot[part] = pooled(multinomial_weights(rng, n_items, part.stop - part.start))
        ci_low, ci_high, used = percentile_ci(boot, confidence, f"pooled intra-rater {method}")
    else:
        in_cluster = unit_clusters(frame, items, clusters, item_labels)
        ci_low, ci_high, scale = jackknife_t_interval(
            estimate,
            pooled(cluster_jackknife_weights(in_cluster)),
            raters=2.0,
            confidence=confidence,
            what=f"the pooled intra-rater {method}",
        )
        used = 0
        interval = "cluster jackknife" + ("" if scale == "fisher z" else " (raw scale)")
    per_rater = pd.DataFrame.from_dict(rows, orient="index")
    per_rater.index.name = raters
    per_rater = per_rater.astype(
        {"n_items": int, "estimate": float, "ci_low": float, "ci_high": float}
    )
    return IntraRaterResult(
        estimate=estimate,
        ci_low=ci_low,
        ci_high=ci_high,
        method=method,
        weights=weights,
        per_rater=per_rater,
        n_raters=len(rows),
        n_items=n_items,
        n_pairs=len(wide),
        confidence=confidence,
        n_boot=n_boot,
        n_boot_used=used,
        seed=seed,
        n_clusters=None if in_cluster is None else int(in_cluster.max()) + 1,
        interval=interval,
    )
