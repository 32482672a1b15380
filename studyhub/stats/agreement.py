"""Inter- and intra-rater agreement: Krippendorff's alpha, ICC, Fleiss' and Cohen's kappa.

Every function takes a long (tidy) data frame with one row per rating plus the
names of its columns, checks the input with :mod:`studyhub.stats._data`, and
returns a frozen dataclass with snake_case attributes (``estimate``,
``ci_low``, ``ci_high``, ``p_value`` ...). Bad input raises
:class:`studyhub.errors.DataError`; no function returns a silent NaN.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from scipy import sparse
from scipy import stats as sps

from studyhub.errors import DataError
from studyhub.stats._data import (
    require_columns,
    require_levels,
    require_numeric,
    require_variation,
)

__all__ = [
    "CohenKappaResult",
    "FleissKappaResult",
    "ICCForm",
    "ICCResult",
    "IntraRaterResult",
    "KrippendorffAlphaResult",
    "cohen_kappa",
    "fleiss_kappa",
    "icc",
    "intra_rater_agreement",
    "krippendorff_alpha",
]

AlphaLevel = Literal["nominal", "ordinal", "interval", "ratio"]
KappaWeights = Literal["linear", "quadratic"] | None
FloatArray = np.ndarray

_ALPHA_LEVELS = ("nominal", "ordinal", "interval", "ratio")
_KAPPA_WEIGHTS = (None, "linear", "quadratic")
_BOOT_CHUNK_CELLS = 4_000_000  # floats held at once by a vectorised bootstrap chunk


# --------------------------------------------------------------------------- helpers


def _check_confidence(confidence: float) -> float:
    if not isinstance(confidence, int | float) or not 0.0 < float(confidence) < 1.0:
        raise DataError(
            f"confidence is {confidence!r}; pass a level strictly between 0 and 1, e.g. 0.95"
        )
    return float(confidence)


def _check_n_boot(n_boot: int) -> int:
    if isinstance(n_boot, bool) or not isinstance(n_boot, int | np.integer) or n_boot < 100:
        raise DataError(
            f"n_boot is {n_boot!r}; pass an integer of at least 100 (2000 is the default)"
        )
    return int(n_boot)


def _require_unique(data: pd.DataFrame, keys: Sequence[str], *, what: str, fix: str) -> None:
    """Refuse rows that repeat a combination of ``keys`` (e.g. a rater rating a unit twice)."""
    dup = data.duplicated(subset=list(keys), keep=False)
    if dup.any():
        first = data.loc[dup, list(keys)].iloc[0]
        shown = ", ".join(f"{k}={_py(first[k])!r}" for k in keys)
        n_dup = int(data.loc[dup, list(keys)].drop_duplicates().shape[0])
        raise DataError(f"{n_dup} {what} appear more than once (e.g. {shown}); {fix}")


def _py(value: object) -> object:
    """A numpy scalar as the Python value it holds, so messages read ``2``, not ``np.int64(2)``."""
    return value.item() if isinstance(value, np.generic) else value


def _z_crit(confidence: float) -> float:
    return float(sps.norm.ppf(0.5 + confidence / 2.0))


def _percentile_ci(boot: FloatArray, confidence: float, what: str) -> tuple[float, float, int]:
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


def _multinomial_weights(rng: np.random.Generator, n_units: int, n_boot: int) -> FloatArray:
    """``n_boot`` x ``n_units`` counts: how often each unit is drawn in each resample."""
    return rng.multinomial(n_units, np.full(n_units, 1.0 / n_units), size=n_boot).astype(float)


def _chunks(n_boot: int, cells_per_replicate: int) -> list[slice]:
    size = max(1, _BOOT_CHUNK_CELLS // max(1, cells_per_replicate))
    return [slice(i, min(i + size, n_boot)) for i in range(0, n_boot, size)]


def _ordered_categories(
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


def _category_scores(cats: Sequence[object]) -> FloatArray:
    """Numeric scores of the categories: their values when numeric, else their ranks."""
    try:
        return np.asarray([float(c) for c in cats])  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return np.arange(len(cats), dtype=float)


# --------------------------------------------------------------------------- ICC

_ICC_FORMS = ("ICC1", "ICC2", "ICC3", "ICC1k", "ICC2k", "ICC3k")
_ICC_DESCRIPTION = {
    "ICC1": "ICC(1,1): one-way random, single rater",
    "ICC2": "ICC(2,1) = ICC(A,1): two-way random, absolute agreement, single rater",
    "ICC3": "ICC(3,1) = ICC(C,1): two-way mixed, consistency, single rater",
    "ICC1k": "ICC(1,k): one-way random, mean of k raters",
    "ICC2k": "ICC(2,k) = ICC(A,k): two-way random, absolute agreement, mean of k raters",
    "ICC3k": "ICC(3,k) = ICC(C,k): two-way mixed, consistency, mean of k raters",
}
_ICC_ALIASES = {
    "icc(1,1)": "ICC1",
    "icc(2,1)": "ICC2",
    "icc(a,1)": "ICC2",
    "icc(3,1)": "ICC3",
    "icc(c,1)": "ICC3",
    "icc(1,k)": "ICC1k",
    "icc(2,k)": "ICC2k",
    "icc(a,k)": "ICC2k",
    "icc(3,k)": "ICC3k",
    "icc(c,k)": "ICC3k",
}


@dataclass(frozen=True)
class ICCForm:
    """One Shrout–Fleiss form of the ICC (a row of :attr:`ICCResult.table`)."""

    form: str
    description: str
    estimate: float
    f_value: float
    df1: int
    df2: int
    p_value: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class ICCResult:
    """The six Shrout–Fleiss intraclass correlations of one balanced design.

    ``table`` is indexed by form (``ICC1``, ``ICC2``, ``ICC3``, ``ICC1k``,
    ``ICC2k``, ``ICC3k``) with columns ``description``, ``estimate``, ``F``,
    ``df1``, ``df2``, ``p_value``, ``ci_low``, ``ci_high``. ``F`` is
    MS_targets / MS_within for ICC1/ICC1k and MS_targets / MS_residual for the
    others (the psych and pingouin convention). ``mean_squares`` holds BMS, WMS,
    JMS, EMS in Shrout & Fleiss's notation.
    """

    table: pd.DataFrame
    n_targets: int
    n_raters: int
    confidence: float
    mean_squares: dict[str, float] = field(default_factory=dict)

    def form(self, name: str) -> ICCForm:
        """Return one form by name: ``"ICC2"``, ``"ICC(2,1)"`` or ``"ICC(A,1)"`` ..."""
        key = _ICC_ALIASES.get(name.strip().lower().replace(" ", ""), name.strip())
        if key not in self.table.index:
            raise DataError(
                f"unknown ICC form {name!r}; pass one of {list(_ICC_FORMS)} "
                "or ICC(1,1), ICC(A,1), ICC(C,1), ICC(1,k), ICC(A,k), ICC(C,k)"
            )
        row = self.table.loc[key].to_dict()
        return ICCForm(
            form=key,
            description=str(row["description"]),
            estimate=float(row["estimate"]),
            f_value=float(row["F"]),
            df1=int(row["df1"]),
            df2=int(row["df2"]),
            p_value=float(row["p_value"]),
            ci_low=float(row["ci_low"]),
            ci_high=float(row["ci_high"]),
        )


def _icc_matrix(
    data: pd.DataFrame, *, targets: str, raters: str, ratings: str
) -> tuple[FloatArray, list[object], list[object]]:
    """Checked, balanced targets x raters matrix."""
    frame = require_columns(data, targets=targets, raters=raters, ratings=ratings)
    values = require_numeric(frame, ratings, role="ratings")
    frame = frame.assign(**{ratings: values})
    require_levels(frame, raters, role="raters")
    require_levels(frame, targets, role="targets")
    require_variation(frame[ratings], role="ratings", column=ratings)
    _require_unique(
        frame,
        [targets, raters],
        what=f"({targets}, {raters}) pairs",
        fix="the ICC needs one rating per target and rater; average or drop repeat readings "
        "(intra_rater_agreement analyses them)",
    )
    wide = frame.pivot(index=targets, columns=raters, values=ratings)
    missing = wide.isna()
    if missing.any().any():
        t_idx, r_idx = np.argwhere(missing.to_numpy())[0]
        raise DataError(
            f"the ICC needs balanced data (every target rated by every rater), but "
            f"{int(missing.to_numpy().sum())} of {missing.size} target x rater cells are "
            f"empty (e.g. {targets}={_py(wide.index[t_idx])!r}, "
            f"{raters}={_py(wide.columns[r_idx])!r}); "
            "drop incomplete targets or raters, or use krippendorff_alpha, which allows "
            "missing ratings"
        )
    return wide.to_numpy(dtype=float), list(wide.index), list(wide.columns)


def _icc_from_matrix(x: FloatArray, confidence: float) -> tuple[pd.DataFrame, dict[str, float]]:
    """Shrout & Fleiss (1979) ICCs with McGraw & Wong (1996) F-based intervals."""
    n, k = x.shape
    grand = x.mean()
    ss_total = float(((x - grand) ** 2).sum())
    ss_targets = float(k * ((x.mean(axis=1) - grand) ** 2).sum())
    ss_raters = float(n * ((x.mean(axis=0) - grand) ** 2).sum())
    ss_resid = ss_total - ss_targets - ss_raters
    df_t, df_r, df_e, df_w = n - 1, k - 1, (n - 1) * (k - 1), n * (k - 1)
    bms = ss_targets / df_t
    jms = ss_raters / df_r
    ems = max(ss_resid, 0.0) / df_e
    wms = (ss_raters + max(ss_resid, 0.0)) / df_w
    if bms <= 0.0:
        raise DataError(
            "the ratings do not vary between targets (between-target mean square is 0), "
            "so the ICC is undefined; check that the targets column identifies the rated items"
        )
    if ems <= 1e-12 * bms or wms <= 1e-12 * bms:
        raise DataError(
            "the residual mean square is 0 (the raters agree perfectly up to a constant), "
            "so the F tests and confidence intervals of the ICC are undefined; report the "
            "agreement descriptively"
        )
    icc1 = (bms - wms) / (bms + (k - 1) * wms)
    icc2 = (bms - ems) / (bms + (k - 1) * ems + k * (jms - ems) / n)
    icc3 = (bms - ems) / (bms + (k - 1) * ems)
    icc1k = (bms - wms) / bms
    icc2k = (bms - ems) / (bms + (jms - ems) / n)
    icc3k = (bms - ems) / bms
    f1 = bms / wms
    f3 = bms / ems
    p1 = float(sps.f.sf(f1, df_t, df_w))
    p3 = float(sps.f.sf(f3, df_t, df_e))

    q = 0.5 + confidence / 2.0
    f1l = f1 / sps.f.ppf(q, df_t, df_w)
    f1u = f1 * sps.f.ppf(q, df_w, df_t)
    f3l = f3 / sps.f.ppf(q, df_t, df_e)
    f3u = f3 * sps.f.ppf(q, df_e, df_t)
    # McGraw & Wong (1996) interval for ICC(A,1) with Satterthwaite degrees of freedom.
    fj = jms / ems
    base = n * (1.0 + (k - 1) * icc2) - k * icc2
    v = (df_e * (k * icc2 * fj + base) ** 2) / (df_t * k**2 * icc2**2 * fj**2 + base**2)
    f2u = sps.f.ppf(q, df_t, v)
    f2l = sps.f.ppf(q, v, df_t)
    denom = k * jms + (k * n - k - n) * ems
    l2 = n * (bms - f2u * ems) / (f2u * denom + n * bms)
    u2 = n * (f2l * bms - ems) / (denom + n * f2l * bms)

    rows = {
        "ICC1": (icc1, f1, df_t, df_w, p1, (f1l - 1) / (f1l + k - 1), (f1u - 1) / (f1u + k - 1)),
        "ICC2": (icc2, f3, df_t, df_e, p3, l2, u2),
        "ICC3": (icc3, f3, df_t, df_e, p3, (f3l - 1) / (f3l + k - 1), (f3u - 1) / (f3u + k - 1)),
        "ICC1k": (icc1k, f1, df_t, df_w, p1, 1 - 1 / f1l, 1 - 1 / f1u),
        "ICC2k": (
            icc2k,
            f3,
            df_t,
            df_e,
            p3,
            l2 * k / (1 + l2 * (k - 1)),
            u2 * k / (1 + u2 * (k - 1)),
        ),
        "ICC3k": (icc3k, f3, df_t, df_e, p3, 1 - 1 / f3l, 1 - 1 / f3u),
    }
    table = pd.DataFrame.from_dict(
        rows,
        orient="index",
        columns=["estimate", "F", "df1", "df2", "p_value", "ci_low", "ci_high"],
    )
    table.insert(0, "description", [_ICC_DESCRIPTION[f] for f in table.index])
    table.index.name = "form"
    table = table.astype({"estimate": float, "F": float, "df1": int, "df2": int})
    squares = {"BMS": bms, "WMS": wms, "JMS": jms, "EMS": ems}
    return table, squares


def icc(
    data: pd.DataFrame,
    *,
    targets: str,
    raters: str,
    ratings: str,
    confidence: float = 0.95,
) -> ICCResult:
    """Intraclass correlations: all six Shrout–Fleiss forms with F tests and intervals.

    Parameters
    ----------
    data : pandas.DataFrame
        Long data, one row per rating. The design must be balanced: every
        target rated exactly once by every rater.
    targets, raters, ratings : str
        Columns naming the rated item, the rater and the (numeric) rating.
    confidence : float, default 0.95
        Level of the confidence intervals.

    Returns
    -------
    ICCResult
        ``table`` with ``estimate``, ``F``, ``df1``, ``df2``, ``p_value``,
        ``ci_low``, ``ci_high`` for ICC1, ICC2, ICC3, ICC1k, ICC2k, ICC3k;
        ``form("ICC2")`` returns one row as an :class:`ICCForm`.

    Raises
    ------
    DataError
        Missing columns, fewer than 2 raters or targets, non-numeric or
        constant ratings, a repeated (target, rater) pair, or unbalanced data.

    Notes
    -----
    Mean squares come from the two-way ANOVA without interaction. Intervals
    follow Shrout & Fleiss (1979) for ICC1/ICC3 and McGraw & Wong (1996) for
    ICC(A,1) (Satterthwaite degrees of freedom), as in R ``psych::ICC``. For
    unbalanced designs or missing ratings use :func:`krippendorff_alpha`.

    Validated against R psych 2.2.9 ``ICC(sf)`` on the Shrout & Fleiss (1979)
    Table 2 data (ICC, F, df, p to 1e-6; CI to 1e-4) and against the paper's
    Table 4 at its 2 printed decimals; ICC, F and p also agree with pingouin
    ``intraclass_corr``.

    References
    ----------
    .. [1] Shrout PE, Fleiss JL (1979). Intraclass correlations: uses in
       assessing rater reliability. Psychological Bulletin 86(2):420-428.
    .. [2] McGraw KO, Wong SP (1996). Forming inferences about some intraclass
       correlation coefficients. Psychological Methods 1(1):30-46.
    .. [3] Koo TK, Li MY (2016). A guideline of selecting and reporting
       intraclass correlation coefficients for reliability research.
       J Chiropr Med 15(2):155-163.
    """
    confidence = _check_confidence(confidence)
    x, _, _ = _icc_matrix(data, targets=targets, raters=raters, ratings=ratings)
    table, squares = _icc_from_matrix(x, confidence)
    return ICCResult(
        table=table,
        n_targets=x.shape[0],
        n_raters=x.shape[1],
        confidence=confidence,
        mean_squares=squares,
    )


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
    """
    frame = require_columns(data, subjects=subjects, raters=raters, ratings=ratings)
    frame = frame[frame[ratings].notna()]
    require_levels(frame, raters, role="raters")
    require_levels(frame, subjects, role="subjects")
    require_levels(frame, ratings, role="ratings")
    _require_unique(
        frame,
        [subjects, raters],
        what=f"({subjects}, {raters}) pairs",
        fix="Fleiss' kappa needs one rating per rater and subject; drop repeat readings",
    )
    cats = _ordered_categories(frame[ratings], None, column=ratings)
    counts = pd.crosstab(frame[subjects], frame[ratings]).reindex(columns=cats, fill_value=0)
    m_per = counts.sum(axis=1)
    if m_per.nunique() != 1:
        low = _py(m_per.idxmin())
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
    """
    confidence = _check_confidence(confidence)
    weights = _check_weights(weights)
    frame = require_columns(data, subjects=subjects, raters=raters, ratings=ratings)
    frame = frame[frame[ratings].notna()]
    rater_levels = require_levels(frame, raters, role="raters")
    if len(rater_levels) != 2:
        raise DataError(
            f"raters column {raters!r} has {len(rater_levels)} distinct values "
            f"({rater_levels[:5]}); Cohen's kappa needs exactly 2 raters; use fleiss_kappa "
            "or krippendorff_alpha for more, or filter the data to one pair of raters"
        )
    _require_unique(
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
            f"(e.g. {subjects}={_py(wide.index[unpaired.to_numpy()][0])!r}); Cohen's kappa needs "
            "paired ratings; drop those subjects"
        )
    if len(wide) < 2:
        raise DataError(
            f"only {len(wide)} subject is rated by both raters; Cohen's kappa needs at least 2"
        )
    require_levels(frame, ratings, role="ratings")
    cats = _ordered_categories(frame[ratings], categories, column=ratings)
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
    w = _weight_matrix(_category_scores(cats), weights)
    kappa, ase, ase0, _ = _kappa_from_table(counts, w)
    if not np.isfinite(kappa) or ase0 == 0.0:
        raise DataError(
            "both raters used a single, identical category for every subject, so chance "
            "agreement is 1 and kappa is undefined; check the ratings column"
        )
    zc = _z_crit(confidence)
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


# --------------------------------------------------------------------------- Krippendorff's alpha


@dataclass(frozen=True)
class KrippendorffAlphaResult:
    """Krippendorff's alpha with a unit-resampling percentile bootstrap interval.

    ``observed_disagreement`` and ``expected_disagreement`` are Krippendorff's
    D_o and D_e (``estimate = 1 - D_o / D_e``). ``n_units`` counts the pairable
    units (at least two values), ``n_values``
    the pairable values, ``n_raters`` the distinct raters; ``n_boot_used`` is
    the number of resamples in which alpha was defined.
    """

    estimate: float
    ci_low: float
    ci_high: float
    level: str
    observed_disagreement: float
    expected_disagreement: float
    n_units: int
    n_raters: int
    n_values: int
    confidence: float
    n_boot: int
    n_boot_used: int
    seed: int


class _AlphaParts:
    """Per-unit sufficient statistics of alpha, so a resample of units is a weighted sum.

    ``counts[u, c]`` is how often unit ``u`` received value ``c``. For a vector of
    unit weights (how often each unit is drawn), the coincidence matrix is
    ``sum_u w_u (n_u n_u^T - diag(n_u)) / (m_u - 1)``; because every distance has
    a zero diagonal, the observed disagreement only needs ``n_u^T D n_u / (m_u - 1)``.
    """

    def __init__(self, counts: FloatArray, values: FloatArray, level: str) -> None:
        self.counts = counts
        self.level = level
        m = counts.sum(axis=1)
        self.scale = 1.0 / (m - 1.0)
        n_val = counts.shape[1]
        if level == "ordinal":
            # The metric depends on the margins, so keep each unit's coincidence
            # contribution: a sparse units x (value pairs that co-occur) matrix.
            unit, value = np.nonzero(counts)
            starts = np.searchsorted(unit, np.arange(len(counts)))
            ends = np.searchsorted(unit, np.arange(len(counts)), side="right")
            pair_unit, pair_c, pair_k = [], [], []
            for u, (a, b) in enumerate(zip(starts, ends, strict=True)):
                vals = value[a:b]
                pair_unit.append(np.full(vals.size**2, u))
                pair_c.append(np.repeat(vals, vals.size))
                pair_k.append(np.tile(vals, vals.size))
            pu, pc, pk = (np.concatenate(x) for x in (pair_unit, pair_c, pair_k))
            flat = pc * n_val + pk
            self.pairs, column = np.unique(flat, return_inverse=True)
            contrib = counts[pu, pc] * counts[pu, pk] * self.scale[pu]
            self.coinc = sparse.csr_matrix(
                (contrib, (pu, column)), shape=(len(counts), self.pairs.size)
            )
            self.dist = np.empty((0, 0))
            self.do_unit = np.empty(0)
        else:
            self.dist = _fixed_distance(values, level)
            self.do_unit = ((counts @ self.dist) * counts).sum(axis=1) * self.scale

    def alpha(self, weights: FloatArray) -> FloatArray:
        """Alpha for each row of ``weights`` (n_resamples x n_units)."""
        n, observed, expected = self.terms(weights)
        with np.errstate(divide="ignore", invalid="ignore"):
            return 1.0 - (n - 1.0) * observed / expected

    def terms(self, weights: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        """``n``, ``sum o_ck d_ck`` and ``sum n_c n_k d_ck`` for each row of ``weights``."""
        margins = weights @ self.counts  # n_c per resample
        n = margins.sum(axis=1)
        if self.level == "ordinal":
            idx = np.arange(margins.shape[1])
            lo, hi = np.minimum.outer(idx, idx), np.maximum.outer(idx, idx)
            cum = np.cumsum(margins, axis=1)
            between = cum[:, hi] - (cum - margins)[:, lo]
            dist = (between - (margins[:, :, None] + margins[:, None, :]) / 2.0) ** 2
            coinc = np.asarray(self.coinc.T @ weights.T).T  # resamples x co-occurring pairs
            observed = (coinc * dist.reshape(len(weights), -1)[:, self.pairs]).sum(axis=1)
            expected = np.einsum("bv,bvw,bw->b", margins, dist, margins)
        else:
            observed = weights @ self.do_unit
            expected = ((margins @ self.dist) * margins).sum(axis=1)
        return n, observed, expected


def _fixed_distance(values: FloatArray, level: str) -> FloatArray:
    """Squared distance matrix of the nominal, interval and ratio metrics."""
    if level == "nominal":
        return 1.0 - np.eye(values.size)
    diff = values[:, None] - values[None, :]
    if level == "interval":
        return diff**2
    total = values[:, None] + values[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(total == 0.0, 0.0, diff / total)
    return ratio**2


def _alpha_values(frame: pd.DataFrame, ratings: str, level: str) -> tuple[FloatArray, FloatArray]:
    """Value codes per row and the numeric value of each code (sorted domain)."""
    col = frame[ratings]
    if level == "nominal":
        codes, uniques = pd.factorize(col, sort=False)
        return codes.astype(int), np.arange(len(uniques), dtype=float)
    if level == "ordinal" and isinstance(col.dtype, pd.CategoricalDtype):
        if not col.dtype.ordered:
            raise DataError(
                f"ratings column {ratings!r} is an unordered categorical; the ordinal level "
                "needs an order: make it an ordered categorical or code the scale as numbers"
            )
        cat_codes = col.cat.codes.to_numpy()
        used = np.unique(cat_codes)
        return np.searchsorted(used, cat_codes), used.astype(float)
    numeric = require_numeric(frame, ratings, role="ratings").to_numpy()
    if level == "ratio" and (numeric < 0).any():
        raise DataError(
            f"ratings column {ratings!r} has negative value {numeric[numeric < 0][0]:g}; the "
            "ratio level needs values >= 0 with a true zero; use level='interval'"
        )
    domain, codes = np.unique(numeric, return_inverse=True)
    return codes.astype(int), domain.astype(float)


def krippendorff_alpha(
    data: pd.DataFrame,
    *,
    units: str,
    raters: str,
    ratings: str,
    level: AlphaLevel = "interval",
    n_boot: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> KrippendorffAlphaResult:
    """Krippendorff's alpha for any number of raters, with missing ratings allowed.

    Parameters
    ----------
    data : pandas.DataFrame
        Long data, one row per rating. A rater who did not rate a unit simply
        has no row (or a missing rating); units with fewer than two ratings
        are not pairable and drop out, as in Krippendorff (2011).
    units, raters, ratings : str
        Columns naming the rated unit (e.g. a stimulus), the rater and the value.
    level : {"interval", "nominal", "ordinal", "ratio"}, default "interval"
        Level of measurement, which selects the difference function. Nominal
        ratings may be any hashable values; ordinal ones numbers or an ordered
        categorical; interval and ratio ones numbers (ratio: non-negative).
    n_boot : int, default 2000
        Number of bootstrap resamples (at least 100).
    seed : int, default 0
        Seed of the bootstrap's random generator (``numpy.random.default_rng``).
    confidence : float, default 0.95
        Level of the percentile interval.

    Returns
    -------
    KrippendorffAlphaResult
        ``estimate``, ``ci_low``, ``ci_high``, ``n_units``, ``n_raters``,
        ``n_values``, ``level`` and the bootstrap settings.

    Raises
    ------
    DataError
        Missing columns, fewer than 2 raters, constant or non-numeric ratings
        (for ordered levels), a rater rating a unit twice, or fewer than two
        pairable units.

    Notes
    -----
    Alpha is ``1 - (n - 1) * sum_ck o_ck d_ck / sum_ck n_c n_k d_ck`` over the
    coincidence matrix ``o`` and its margins ``n_c`` (Krippendorff 2011).

    The interval is a **unit-resampling percentile bootstrap**: pairable
    units are drawn with replacement, each with all of its ratings, and alpha
    is recomputed on each resample (margins and, for the ordinal level, the
    metric included). This is not Krippendorff's (Hayes & Krippendorff 2007)
    bootstrap, which resamples pairs of values; resampling units keeps the
    ratings of one unit together, the usual scheme for clustered data. Each
    unit's contribution to the coincidence matrix is computed once, so a
    resample is a weighted sum and the bootstrap is a few matrix products.

    Validated against Krippendorff (2011) (nominal .743, ordinal .815,
    interval .849, ratio .797 at 3 decimals) and, to 1e-6, against the
    ``krippendorff`` package (0.9.0) on that data and on random data with
    missing values, including explicit bootstrap resamples.

    References
    ----------
    .. [1] Krippendorff K (2011). Computing Krippendorff's Alpha-Reliability.
       Departmental Papers (ASC), University of Pennsylvania.
       https://repository.upenn.edu/asc_papers/43
    .. [2] Hayes AF, Krippendorff K (2007). Answering the call for a standard
       reliability measure for coding data. Communication Methods and
       Measures 1(1):77-89.
    """
    if level not in _ALPHA_LEVELS:
        raise DataError(
            f"level is {level!r}; pass one of 'nominal', 'ordinal', 'interval', 'ratio'"
        )
    confidence = _check_confidence(confidence)
    n_boot = _check_n_boot(n_boot)
    frame = require_columns(data, units=units, raters=raters, ratings=ratings)
    frame = frame[frame[ratings].notna()]
    require_levels(frame, raters, role="raters")
    _require_unique(
        frame,
        [units, raters],
        what=f"({units}, {raters}) pairs",
        fix="alpha needs one rating per rater and unit; drop repeat readings "
        "(intra_rater_agreement analyses them)",
    )
    codes, domain = _alpha_values(frame, ratings, level)
    if domain.size < 2:
        shown = _py(frame[ratings].iloc[0]) if len(frame) else None
        raise DataError(
            f"ratings column {ratings!r} is constant (every value is {shown!r}); the "
            "statistic is undefined for constant ratings; check that the right column was passed"
        )
    unit_codes, unit_labels = pd.factorize(frame[units])
    counts = np.zeros((len(unit_labels), domain.size))
    np.add.at(counts, (unit_codes, codes), 1.0)
    pairable = counts.sum(axis=1) >= 2
    counts = counts[pairable]
    if counts.shape[0] < 2:
        raise DataError(
            f"{int(counts.shape[0])} unit(s) have ratings from at least 2 raters; alpha needs "
            "at least 2 pairable units; check the units and raters columns"
        )
    used = counts.sum(axis=0) > 0
    counts, domain = counts[:, used], domain[used]
    if domain.size < 2:
        raise DataError(
            f"ratings column {ratings!r} is constant over the pairable units (every value "
            f"is {domain[0]:g}); alpha is undefined for constant ratings"
        )
    parts = _AlphaParts(counts, domain, level)
    n_tot, observed, expected = (float(t[0]) for t in parts.terms(np.ones((1, len(counts)))))
    estimate = 1.0 - (n_tot - 1.0) * observed / expected
    rng = np.random.default_rng(seed)
    n_units = counts.shape[0]
    per_rep = n_units + (3 * domain.size**2 if level == "ordinal" else 2 * domain.size)
    boot = np.empty(n_boot)
    for part in _chunks(n_boot, per_rep):
        boot[part] = parts.alpha(_multinomial_weights(rng, n_units, part.stop - part.start))
    ci_low, ci_high, used_boot = _percentile_ci(boot, confidence, "alpha")
    rated = frame[frame[units].isin(unit_labels[pairable])]
    return KrippendorffAlphaResult(
        estimate=estimate,
        ci_low=ci_low,
        ci_high=ci_high,
        level=level,
        observed_disagreement=observed / n_tot,
        expected_disagreement=expected / (n_tot * (n_tot - 1.0)),
        n_units=n_units,
        n_raters=int(rated[raters].nunique()),
        n_values=int(counts.sum()),
        confidence=confidence,
        n_boot=n_boot,
        n_boot_used=used_boot,
        seed=seed,
    )


# --------------------------------------------------------------------------- intra-rater


@dataclass(frozen=True)
class IntraRaterResult:
    """Agreement between the first and the repeat reading of the same items.

    ``estimate`` / ``ci_low`` / ``ci_high`` are pooled over raters (item-clustered
    percentile bootstrap interval). ``per_rater`` is indexed by rater with
    columns ``n_items``, ``estimate``, ``ci_low``, ``ci_high`` (asymptotic
    intervals) and ``note``, which says why a rater's value is missing when it
    is undefined (e.g. a rater who gave one category in both readings).
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


def _kappa_vectorised(tables: FloatArray, w: FloatArray) -> FloatArray:
    """Kappa of each table in ``tables`` (resamples x V x V)."""
    n = tables.sum(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        p = tables / n[:, None, None]
        r, c = p.sum(axis=2), p.sum(axis=1)
        po = (p * w).sum(axis=(1, 2))
        pe = np.einsum("bi,ij,bj->b", r, w, c)
        return (po - pe) / (1.0 - pe)


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
        recorded twice, no item read twice by the same rater, or a pooled value
        that is undefined (constant ratings).

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
    confidence = _check_confidence(confidence)
    n_boot = _check_n_boot(n_boot)
    frame = require_columns(data, items=items, raters=raters, ratings=ratings, repeat=repeat)
    if len({items, raters, ratings, repeat}) != 4:
        raise DataError(
            f"items={items!r}, raters={raters!r}, ratings={ratings!r}, repeat={repeat!r} "
            "must be four different columns"
        )
    frame = frame[frame[ratings].notna()]
    first_level, second_level = _repeat_levels(frame, repeat, first)
    _require_unique(
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
    zc = _z_crit(confidence)
    rows: dict[object, dict[str, object]] = {}

    if method == "kappa":
        require_levels(frame, ratings, role="ratings")
        cats = _ordered_categories(frame[ratings], categories, column=ratings)
        index = {c: i for i, c in enumerate(cats)}
        ia, ib = a.map(index).to_numpy(int), b.map(index).to_numpy(int)
        w = _weight_matrix(_category_scores(cats), weights)
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
    rng = np.random.default_rng(seed)
    boot = np.empty(n_boot)
    for part in _chunks(n_boot, n_items + cells):
        boot[part] = pooled(_multinomial_weights(rng, n_items, part.stop - part.start))
    ci_low, ci_high, used = _percentile_ci(boot, confidence, f"pooled intra-rater {method}")
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
    )
