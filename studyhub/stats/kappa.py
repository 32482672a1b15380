"""Chance-corrected agreement on a categorical scale: Fleiss' and Cohen's kappa."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats as sps

from studyhub.errors import DataError
from studyhub.stats._agreement_common import (
    FloatArray,
    category_scores,
    check_confidence,
    ordered_categories,
    z_crit,
)
from studyhub.stats._data import as_python, require_columns, require_levels, require_unique

__all__ = ["CohenKappaResult", "FleissKappaResult", "KappaWeights", "cohen_kappa", "fleiss_kappa"]

KappaWeights = Literal["linear", "quadratic"] | None

_KAPPA_WEIGHTS = (None, "linear", "quadratic")


# --------------------------------------------------------------------------- Fleiss' kappa


@dataclass(frozen=True)
class FleissKappaResult:
    """Fleiss' kappa for a fixed number of ratings per subject.

    ``se`` is the standard error under H0: kappa = 0 (Fleiss, Nee & Landis
    1979), ``z = estimate / se`` and ``p_value`` is two-sided. ``per_category``
    is indexed by category with columns ``count`` (ratings in the category),
    ``proportion``, ``estimate``, ``se``,
    ``z``, ``p_value``.
    """

    estimate: float
    se: float
    z: float
    p_value: float
    p_bar: float
    p_e: float
    per_category: pd.DataFrame
    n_subjects: int
    n_raters_per_subject: int


def fleiss_kappa(
    data: pd.DataFrame, *, subjects: str, raters: str, ratings: str
) -> FleissKappaResult:
    """Fleiss' kappa: chance-corrected agreement of m ratings per subject, nominal scale.

    Parameters
    ----------
    data : pandas.DataFrame
        Long data, one row per rating. Each subject must carry the same number
        m >= 2 of ratings; the raters may differ between subjects. Rows with a
        missing rating are dropped before that check.
    subjects, raters, ratings : str
        Columns naming the rated subject, the rater and the category given.

    Returns
    -------
    FleissKappaResult
        ``estimate``, ``se`` (under H0), ``z``, two-sided ``p_value``,
        ``p_bar`` (mean observed agreement), ``p_e`` (chance agreement),
        ``per_category`` kappas with their own z tests, ``n_subjects``,
        ``n_raters_per_subject``.

    Raises
    ------
    DataError
        Missing columns, fewer than 2 raters, subjects or categories, a rater
        rating a subject twice, or subjects with different numbers of ratings.

    Notes
    -----
    Standard errors under H0 follow Fleiss, Nee & Landis (1979), as in R
    ``irr::kappam.fleiss(detail=TRUE)``. For missing ratings or ordinal scales
    use :func:`krippendorff_alpha`.

    Validated against Fleiss (1971) (kappa .430, P-bar .556, P-e .220 and the
    five per-category kappas at 3 decimals) and R irr 0.84.1
    ``kappam.fleiss`` (kappa 0.4302445, z 17.65183) on the ``diagnoses`` data;
    kappa also agrees with statsmodels ``fleiss_kappa``.

    References
    ----------
    .. [1] Fleiss JL (1971). Measuring nominal scale agreement among many
       raters. Psychological Bulletin 76(5):378-382.
    .. [2] Fleiss JL, Nee JCM, Landis JR (1979). Large sample variance of kappa
       in the case of different sets of raters. Psychological Bulletin
       86(5):974-977.

    Examples
    --------
    >>> import pandas as pd
    >>> dx = ["crack", "crack", "crack", "pit", "pit", "crack", "none", "none", "none",
    ...       "pit", "pit", "pit"]
    >>> data = pd.DataFrame({"case": [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4],
    ...                      "rater": ["a", "b", "c"] * 4, "dx": dx})
    >>> round(fleiss_kappa(data, subjects="case", raters="rater", ratings="dx").estimate, 3)
    0.745
    """
    frame = require_columns(
        data, subjects=subjects, raters=raters, ratings=ratings, missing_ok=("ratings",)
    )
    frame = frame[frame[ratings].notna()]
    require_levels(frame, raters, role="raters")
    require_levels(frame, subjects, role="subjects")
    require_levels(frame, ratings, role="ratings")
    require_unique(
        frame,
        [subjects, raters],
        what=f"({subjects}, {raters}) pairs",
        fix="Fleiss' kappa needs one rating per rater and subject; drop repeat readings",
    )
    cats = ordered_categories(frame[ratings], None, column=ratings)
    counts = pd.crosstab(frame[subjects], frame[ratings]).reindex(columns=cats, fill_value=0)
    m_per = counts.sum(axis=1)
    if m_per.nunique() != 1:
        low = as_python(m_per.idxmin())
        raise DataError(
            f"Fleiss' kappa needs the same number of ratings per subject, but it ranges from "
            f"{int(m_per.min())} ({subjects}={low!r}) to {int(m_per.max())}; drop subjects "
            "with missing ratings or use krippendorff_alpha, which allows them"
        )
    m = int(m_per.iloc[0])
    if m < 2:
        raise DataError(f"each subject has {m} rating; Fleiss' kappa needs at least 2 per subject")
    nij = counts.to_numpy(dtype=float)
    n_sub = nij.shape[0]
    p = nij.sum(axis=0) / (n_sub * m)
    q = 1.0 - p
    p_i = (nij * (nij - 1)).sum(axis=1) / (m * (m - 1))
    p_bar = float(p_i.mean())
    p_e = float((p**2).sum())
    kappa = (p_bar - p_e) / (1.0 - p_e)
    pq = p * q
    se0 = float(
        np.sqrt(2.0)
        / (pq.sum() * np.sqrt(n_sub * m * (m - 1)))
        * np.sqrt(pq.sum() ** 2 - (pq * (q - p)).sum())
    )
    z = kappa / se0
    kappa_j = 1.0 - (nij * (m - nij)).sum(axis=0) / (n_sub * m * (m - 1) * pq)
    se0_j = np.sqrt(2.0 / (n_sub * m * (m - 1)))
    z_j = kappa_j / se0_j
    per_category = pd.DataFrame(
        {
            "count": nij.sum(axis=0).astype(int),
            "proportion": p,
            "estimate": kappa_j,
            "se": se0_j,
            "z": z_j,
            "p_value": 2.0 * sps.norm.sf(np.abs(z_j)),
        },
        index=pd.Index(cats, name="category"),
    )
    return FleissKappaResult(
        estimate=float(kappa),
        se=se0,
        z=float(z),
        p_value=float(2.0 * sps.norm.sf(abs(z))),
        p_bar=p_bar,
        p_e=p_e,
        per_category=per_category,
        n_subjects=n_sub,
        n_raters_per_subject=m,
    )


# --------------------------------------------------------------------------- Cohen's kappa


@dataclass(frozen=True)
class CohenKappaResult:
    """Cohen's (weighted) kappa of two raters with asymptotic standard errors.

    ``ase`` is the asymptotic standard error used for the interval, ``ase_h0``
    the one under H0: kappa = 0 used for ``z``; ``p_value`` is two-sided and
    ``p_value_one_sided`` tests kappa > 0 (SAS PROC FREQ prints both).
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
        a repeated (subject, rater) pair, or a single category.

    Notes
    -----
    Variances follow Fleiss, Cohen & Everitt (1969), the formulas SAS PROC
    FREQ (AGREE) documents.

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
        data, subjects=subjects, raters=raters, ratings=ratings, missing_ok=("ratings",)
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
    return _cohen_from_pairs(
        wide[first], wide[second], cats, weights, confidence, names=(str(first), str(second))
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
