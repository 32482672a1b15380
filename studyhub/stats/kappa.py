"""Chance-corrected agreement of two raters on a categorical scale: Cohen's kappa.

:func:`fleiss_kappa` and :class:`FleissKappaResult` are re-exported from
:mod:`studyhub.stats.fleiss`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats as sps

from studyhub.errors import DataError
from studyhub.stats._agreement_common import (
    FloatArray,
    category_scores,
    check_confidence,
    cluster_jackknife_weights,
    jackknife_t_interval,
    ordered_categories,
    unit_clusters,
    z_crit,
)
from studyhub.stats._data import as_python, require_columns, require_levels, require_unique
from studyhub.stats.fleiss import FleissKappaResult, fleiss_kappa

__all__ = ["CohenKappaResult", "FleissKappaResult", "KappaWeights", "cohen_kappa", "fleiss_kappa"]

KappaWeights = Literal["linear", "quadratic"] | None

_KAPPA_WEIGHTS = (None, "linear", "quadratic")


# --------------------------------------------------------------------------- Cohen's kappa


@dataclass(frozen=True)
class CohenKappaResult:
    """Cohen's (weighted) kappa of two raters with asymptotic standard errors.

    ``ase`` is the asymptotic standard error used for the interval, ``ase_h0``
    the one under H0: kappa = 0 used for ``z``; ``p_value`` is two-sided and
    ``p_value_one_sided`` tests kappa > 0 (SAS PROC FREQ prints both).
    ``interval`` is ``"asymptotic"`` (``estimate -/+ z * ase``) or ``"cluster
    jackknife"`` (over the ``n_clusters`` clusters of subjects, on Fisher's z
    scale, or ``"cluster jackknife (raw scale)"`` where z is undefined).
    """

    estimate: float
    ase: float
    ci_low: float
    ci_high: float
    ase_h0: float
    z: float
    p_value: float
    p_value_one_sided: float
    weights: str | None
    categories: list[object]
    table: pd.DataFrame
    n_subjects: int
    confidence: float
    interval: str = "asymptotic"
    n_clusters: int | None = None


def _weight_matrix(scores: FloatArray, weights: KappaWeights) -> FloatArray:
    diff = np.abs(scores[:, None] - scores[None, :])
    span = float(scores.max() - scores.min()) if scores.size > 1 else 1.0
    if weights is None:
        return np.eye(scores.size)
    if weights == "linear":
        return 1.0 - diff / span
    return 1.0 - (diff / span) ** 2


def _kappa_from_table(counts: FloatArray, w: FloatArray) -> tuple[float, float, float, float]:
    """Weighted kappa, its ASE and ASE under H0 (Fleiss, Cohen & Everitt 1969); and pe."""
    n = counts.sum()
    p = counts / n
    r = p.sum(axis=1)
    c = p.sum(axis=0)
    po = float((w * p).sum())
    pe = float((w * np.outer(r, c)).sum())
    if pe >= 1.0 - 1e-12:
        return float("nan"), float("nan"), float("nan"), pe
    kappa = (po - pe) / (1.0 - pe)
    wi = w @ c  # weighted mean of row i over the column margins
    wj = r @ w  # weighted mean of column j over the row margins
    s = wi[:, None] + wj[None, :]
    var = ((p * (w - s * (1.0 - kappa)) ** 2).sum() - (kappa - pe * (1.0 - kappa)) ** 2) / (
        n * (1.0 - pe) ** 2
    )
    var0 = ((np.outer(r, c) * (w - s) ** 2).sum() - pe**2) / (n * (1.0 - pe) ** 2)
    return float(kappa), float(np.sqrt(max(var, 0.0))), float(np.sqrt(max(var0, 0.0))), pe


def _kappa_vectorised(tables: FloatArray, w: FloatArray) -> FloatArray:
    """Kappa of each table in ``tables`` (resamples x V x V)."""
    n = tables.sum(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        p = tables / n[:, None, None]
        r, c = p.sum(axis=2), p.sum(axis=1)
        po = (p * w).sum(axis=(1, 2))
        pe = np.einsum("bi,ij,bj->b", r, w, c)
        return (po - pe) / (1.0 - pe)


def _check_weights(weights: object) -> KappaWeights:
    if weights not in _KAPPA_WEIGHTS:
        raise DataError(
            f"weights is {weights!r}; pass None (unweighted), 'linear' (Cicchetti-Allison) "
            "or 'quadratic' (Fleiss-Cohen)"
        )
    return weights  # type: ignore[return-value]


def cohen_kappa(
    data: pd.DataFrame,
    *,
    subjects: str,
    raters: str,
    ratings: str,
    weights: KappaWeights = None,
    categories: Sequence[object] | None = None,
    confidence: float = 0.95,
    clusters: str | None = None,
) -> CohenKappaResult:
    """Cohen's kappa of exactly two raters, unweighted or with linear/quadratic weights.

    Parameters
    ----------
    data : pandas.DataFrame
        Long data, one row per rating; every subject rated once by each of the
        two raters.
    subjects, raters, ratings : str
        Columns naming the rated subject, the rater and the category given.
    weights : {None, "linear", "quadratic"}, default None
        None gives Cohen's (1960) kappa; ``"linear"`` Cicchetti–Allison weights
        ``1 - |s_i - s_j| / (s_max - s_min)`` (the SAS default); ``"quadratic"``
        Fleiss–Cohen weights ``1 - (s_i - s_j)^2 / (s_max - s_min)^2``. The scores
        ``s`` are the category values when numeric, else their ranks.
    categories : sequence, optional
        The full ordered scale. Default: the observed categories, sorted (or
        the order of an ordered categorical column).
    confidence : float, default 0.95
        Level of the Wald interval ``estimate ± z * ase``.
    clusters : str, optional
        Column grouping the subjects into independent clusters (e.g. the case
        when a subject is a case shown under one arm). The interval then leaves
        out one cluster at a time (a cluster jackknife on Fisher's z scale,
        ``atanh`` for two raters), since the asymptotic variance assumes
        independent subjects. Default: independent subjects.

    Returns
    -------
    CohenKappaResult
        ``estimate``, ``ase``, ``ci_low``, ``ci_high``, ``ase_h0``, ``z``,
        ``p_value`` (two-sided), ``p_value_one_sided``, the agreement ``table``
        and ``n_subjects``.

    Raises
    ------
    DataError
        Missing columns, other than two raters, a subject not rated by both,
        a repeated (subject, rater) pair, a single category, or a subject in
        more than one cluster.

    Notes
    -----
    Variances follow Fleiss, Cohen & Everitt (1969), the formulas SAS PROC
    FREQ (AGREE) documents. With ``clusters`` the interval is ``atanh(kappa)
    -/+ t(C-1) se`` back-transformed, ``se`` the delete-one-cluster jackknife
    standard error over the ``C`` clusters (:mod:`studyhub.stats.agreement`);
    the z test (its variance under H0, when the raters' categories are
    independent) is kept.

    Validated against the SAS PROC FREQ printout for the 3x3 ``table10``
    example recorded in statsmodels' tests (kappa, ASE, 95% limits, ASE under
    H0, Z, one- and two-sided p at the 4 printed decimals, unweighted and
    linear weights); the quadratic-weighted values agree with statsmodels
    ``cohens_kappa(wt="quadratic")``.

    References
    ----------
    .. [1] Cohen J (1960). A coefficient of agreement for nominal scales.
       Educational and Psychological Measurement 20:37-46.
    .. [2] Cohen J (1968). Weighted kappa. Psychological Bulletin 70:213-220.
    .. [3] Fleiss JL, Cohen J, Everitt BS (1969). Large sample standard errors
       of kappa and weighted kappa. Psychological Bulletin 72:323-327.
    .. [4] SAS Institute. The FREQ procedure: tests and measures of agreement.

    Examples
    --------
    >>> import pandas as pd
    >>> data = pd.DataFrame({"case": [1, 1, 2, 2, 3, 3, 4, 4, 5, 5], "rater": ["a", "b"] * 5,
    ...                      "score": [1, 1, 2, 2, 3, 3, 4, 3, 5, 5]})
    >>> round(cohen_kappa(data, subjects="case", raters="rater", ratings="score",
    ...                   weights="linear").estimate, 3)
    0.872
    """
    confidence = check_confidence(confidence)
    weights = _check_weights(weights)
    frame = require_columns(
        data,
        subjects=subjects,
        raters=raters,
        ratings=ratings,
        clusters=clusters,
        missing_ok=("ratings",),
    )
    frame = frame[frame[ratings].notna()]
    rater_levels = require_levels(frame, raters, role="raters")
    if len(rater_levels) != 2:
        raise DataError(
            f"raters column {raters!r} has {len(rater_levels)} distinct values "
            f"({rater_levels[:5]}); Cohen's kappa needs exactly 2 raters; use fleiss_kappa "
            "or krippendorff_alpha for more, or filter the data to one pair of raters"
        )
    require_unique(
        frame,
        [subjects, raters],
        what=f"({subjects}, {raters}) pairs",
        fix="Cohen's kappa needs one rating per rater and subject; drop repeat readings "
        "(intra_rater_agreement analyses them)",
    )
    wide = frame.pivot(index=subjects, columns=raters, values=ratings)
    unpaired = wide.isna().any(axis=1)
    if unpaired.any():
        raise DataError(
            f"{int(unpaired.sum())} subject(s) are rated by only one of the two raters "
            f"(e.g. {subjects}={as_python(wide.index[unpaired.to_numpy()][0])!r}); "
            "Cohen's kappa needs paired ratings; drop those subjects"
        )
    if len(wide) < 2:
        raise DataError(
            f"only {len(wide)} subject is rated by both raters; Cohen's kappa needs at least 2"
        )
    require_levels(frame, ratings, role="ratings")
    cats = ordered_categories(frame[ratings], categories, column=ratings)
    first, second = rater_levels
    result = _cohen_from_pairs(
        wide[first], wide[second], cats, weights, confidence, names=(str(first), str(second))
    )
    if clusters is None:
        return result
    in_cluster = unit_clusters(frame, subjects, clusters, wide.index)
    index = {c: i for i, c in enumerate(cats)}
    v = len(cats)
    cell = wide[first].map(index).to_numpy(int) * v + wide[second].map(index).to_numpy(int)
    per_subject = np.zeros((len(wide), v * v))
    per_subject[np.arange(len(wide)), cell] = 1.0
    w = _weight_matrix(category_scores(cats), weights)
    leave_out = _kappa_vectorised(
        (cluster_jackknife_weights(in_cluster) @ per_subject).reshape(-1, v, v), w
    )
    low, high, scale = jackknife_t_interval(
        result.estimate, leave_out, raters=2.0, confidence=confidence, what="Cohen's kappa"
    )
    return replace(
        result,
        ci_low=low,
        ci_high=high,
        interval="cluster jackknife" + ("" if scale == "fisher z" else " (raw scale)"),
        n_clusters=int(in_cluster.max()) + 1,
    )


def _cohen_from_pairs(
    a: pd.Series,
    b: pd.Series,
    cats: list[object],
    weights: KappaWeights,
    confidence: float,
    *,
    names: tuple[str, str],
) -> CohenKappaResult:
    index = {c: i for i, c in enumerate(cats)}
    counts = np.zeros((len(cats), len(cats)))
    np.add.at(counts, (a.map(index).to_numpy(int), b.map(index).to_numpy(int)), 1.0)
    w = _weight_matrix(category_scores(cats), weights)
    kappa, ase, ase0, _ = _kappa_from_table(counts, w)
    if not np.isfinite(kappa) or ase0 == 0.0:
        raise DataError(
            "both raters used a single, identical category for every subject, so chance "
            "agreement is 1 and kappa is undefined; check the ratings column"
        )
    zc = z_crit(confidence)
    z = kappa / ase0
    table = pd.DataFrame(
        counts.astype(int),
        index=pd.Index(cats, name=names[0]),
        columns=pd.Index(cats, name=names[1]),
    )
    return CohenKappaResult(
        estimate=kappa,
        ase=ase,
        ci_low=kappa - zc * ase,
        ci_high=kappa + zc * ase,
        ase_h0=ase0,
        z=z,
        p_value=float(2.0 * sps.norm.sf(abs(z))),
        p_value_one_sided=float(sps.norm.sf(z)),
        weights=weights,
        categories=list(cats),
        table=table,
        n_subjects=int(counts.sum()),
        confidence=confidence,
    )
