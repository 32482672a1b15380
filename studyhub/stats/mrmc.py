"""Multi-reader multi-case (MRMC) ROC analysis: Obuchowski-Rockette with Hillis df.

Readers rate every case under every modality (a fully crossed design). The
figure of merit is the empirical (trapezoidal, Mann-Whitney) AUC of each reader
in each modality; its leave-one-case-out jackknife is computed exactly from
DeLong's structural components (placement values), so no AUC is refitted. The
Obuchowski-Rockette (OR) model then gives the random-reader random-case,
fixed-reader random-case and random-reader fixed-case analyses, and the
Dorfman-Berbaum-Metz (DBM) pseudovalue ANOVA is reported alongside.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from studyhub.errors import DataError
from studyhub.stats._data import (
    _plain,
    require_binary,
    require_columns,
    require_crossed,
    require_levels,
    require_numeric,
)
from studyhub.stats.mrmc_results import (
    DBMAnalysis,
    FRRCTest,
    FTest,
    MRMCResult,
    MRMCTest,
    ORCovariance,
    RRFCTest,
    RRRCTest,
)

__all__ = [
    "DBMAnalysis",
    "FRRCTest",
    "FTest",
    "MRMCResult",
    "MRMCTest",
    "ORCovariance",
    "RRFCTest",
    "RRRCTest",
    "mrmc",
]

_DIFF_COLS = ["modality_a", "modality_b", "estimate", "stderr", "statistic", "df"]
_DIFF_COLS += ["p_value", "ci_low", "ci_high"]


def _factorize(values: pd.Series) -> tuple[np.ndarray, list[Any]]:
    """Integer codes and levels, sorted when the labels are comparable."""
    try:
        codes, levels = pd.factorize(values, sort=True)
    except TypeError:
        codes, levels = pd.factorize(values)
    return codes, list(levels)


def _structural(y: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AUC and DeLong placement values over the last axis of ``y`` (ties count 1/2)."""
    x, z = y[..., ~pos], y[..., pos]
    n0, n1 = x.shape[-1], z.shape[-1]
    ranks = stats.rankdata(np.concatenate([x, z], axis=-1), axis=-1)
    v10 = (ranks[..., n0:] - stats.rankdata(z, axis=-1)) / n0  # per diseased case
    v01 = 1.0 - (ranks[..., :n0] - stats.rankdata(x, axis=-1)) / n1  # per non-diseased
    return v10.mean(axis=-1), v10, v01


def _jackknife_auc(y: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Leave-one-case-out AUCs (last axis = case left out), exact from placements."""
    auc, v10, v01 = _structural(y, pos)
    n1, n0 = v10.shape[-1], v01.shape[-1]
    jack = np.empty(y.shape, dtype=float)
    jack[..., pos] = (n1 * auc[..., None] - v10) / (n1 - 1)
    jack[..., ~pos] = (n0 * auc[..., None] - v01) / (n0 - 1)
    return jack


def _crit(alpha: float, df: float) -> float:
    if math.isinf(df):
        return float(stats.norm.isf(alpha / 2))
    return float(stats.t.isf(alpha / 2, df))


def _f_sf(f: float, ndf: float, ddf: float) -> float:
    if math.isinf(ddf):
        return float(stats.chi2.sf(f * ndf, ndf))
    return float(stats.f.sf(f, ndf, ddf))


def _satterthwaite(total: float, part: float, df: float) -> float:
    """``total**2 / (part**2 / df)``; infinite when ``part`` is zero."""
    return math.inf if part <= 0 else total**2 / (part**2 / df)


def _diff_row(a: Any, b: Any, est: float, se: float, df: float, alpha: float) -> list[Any]:
    if se > 0:
        stat = est / se
        p = 2 * (stats.norm.sf(abs(stat)) if math.isinf(df) else stats.t.sf(abs(stat), df))
    else:  # zero variance: the statistic is 0 (equal AUCs) or infinite
        stat, p = (0.0, 1.0) if est == 0 else (math.copysign(math.inf, est), 0.0)
    half = _crit(alpha, df) * se
    return [a, b, est, se, stat, df, float(p), est - half, est + half]


def _pairs(mods: list[Any], theta: np.ndarray, var: float, df: float, alpha: float) -> pd.DataFrame:
    """Pairwise differences of modality means sharing one variance ``var``."""
    rows = [
        _diff_row(mods[i], mods[j], float(theta[i] - theta[j]), math.sqrt(var), df, alpha)
        for i in range(len(mods))
        for j in range(i + 1, len(mods))
    ]
    return pd.DataFrame(rows, columns=_DIFF_COLS)


def _single(
    mods: list[Any], theta: np.ndarray, var: np.ndarray, df: np.ndarray, alpha: float
) -> pd.DataFrame:
    se = np.sqrt(var)
    half = np.array([_crit(alpha, float(d)) for d in df]) * se
    return pd.DataFrame(
        {"modality": mods, "auc": theta, "stderr": se, "df": df}
        | {"ci_low": theta - half, "ci_high": theta + half}
    )


def _undefined(test: str, what: str) -> DataError:
    return DataError(
        f"the {test} analysis is undefined: {what}; this happens when AUCs do not vary "
        "(e.g. every reader separates the classes perfectly in every modality); "
        "report the AUCs descriptively or add cases"
    )


def _anova_table(names: list[str], ss: list[float], df: list[int]) -> pd.DataFrame:
    return pd.DataFrame(
        {"source": names, "ss": ss, "df": df, "ms": [s / d for s, d in zip(ss, df, strict=True)]}
    )


def _dbm(jack: np.ndarray, auc: np.ndarray, mods: list[Any], alpha: float) -> DBMAnalysis:
    """DBM ANOVA of jackknife pseudovalues ``n*AUC - (n-1)*AUC_(-k)``."""
    t, r, n = jack.shape
    y = n * auc[..., None] - (n - 1) * jack
    m = y.mean()
    mt, mr, mc = y.mean((1, 2)), y.mean((0, 2)), y.mean((0, 1))
    mtr, mtc, mrc = y.mean(2), y.mean(1), y.mean(0)
    ss = [
        r * n * np.sum((mt - m) ** 2),
        t * n * np.sum((mr - m) ** 2),
        t * r * np.sum((mc - m) ** 2),
        n * np.sum((mtr - mt[:, None] - mr[None, :] + m) ** 2),
        r * np.sum((mtc - mt[:, None] - mc[None, :] + m) ** 2),
        t * np.sum((mrc - mr[:, None] - mc[None, :] + m) ** 2),
    ]
    dfs = [t - 1, r - 1, n - 1, (t - 1) * (r - 1), (t - 1) * (n - 1), (r - 1) * (n - 1)]
    dfs.append((t - 1) * (r - 1) * (n - 1))
    ss.append(np.sum((y - m) ** 2) - sum(ss))  # T x R x C residual
    table = _anova_table(["T", "R", "C", "TR", "TC", "RC", "TRC"], [float(s) for s in ss], dfs)
    ms = dict(zip(table["source"], table["ms"], strict=True))
    if ms["TC"] <= 0:
        raise _undefined("DBM fixed-reader", "MS(T*C) of the pseudovalues is 0")
    ddf = float(dfs[4])
    var_diff = 2 * ms["TC"] / (r * n)
    frrc = FTest(
        p_value=_f_sf(ms["T"] / ms["TC"], t - 1, ddf),
        differences=_pairs(mods, mtr.mean(1), var_diff, ddf, alpha),
        # single modality i: MS(C) within i is r * var(mtc[i]), on n - 1 df
        modality_ci=_single(mods, mtr.mean(1), mtc.var(1, ddof=1) / n, np.full(t, n - 1.0), alpha),
        f_stat=ms["T"] / ms["TC"],
        ndf=float(t - 1),
        ddf=ddf,
        error_term=ms["TC"],
    )
    return DBMAnalysis(
        anova=table,
        var_r=(ms["R"] - ms["TR"] - ms["RC"] + ms["TRC"]) / (t * n),
        var_c=(ms["C"] - ms["TC"] - ms["RC"] + ms["TRC"]) / (t * r),
        var_tr=(ms["TR"] - ms["TRC"]) / n,
        var_tc=(ms["TC"] - ms["TRC"]) / r,
        var_rc=(ms["RC"] - ms["TRC"]) / t,
        var_trc_error=ms["TRC"],
        error_ms=ms["TR"] + max(ms["TC"] - ms["TRC"], 0.0),
        frrc=frrc,
    )


def _prepare(
    data: pd.DataFrame, reader: str, modality: str, case: str, truth: str, rating: str
) -> tuple[np.ndarray, np.ndarray, list[Any], list[Any]]:
    """Check the input and return ratings ``y[t, r, n]``, truth per case, levels."""
    frame = require_columns(
        data,
        reader=reader,
        modality=modality,
        case=case,
        truth=truth,
        rating=rating,
        missing_ok=("rating",),  # refused below, naming the reading
    )
    values = require_numeric(frame, rating, role="rating")
    if values.isna().any():
        row = values.isna().idxmax()
        raise DataError(
            f"rating column {rating!r} is missing for reader={_plain(frame.at[row, reader])!r}, "
            f"modality={_plain(frame.at[row, modality])!r}, case={_plain(frame.at[row, case])!r} "
            f"(row {_plain(row)!r}); "
            "a fully crossed MRMC analysis needs every reading: add it or drop the case"
        )
    status = require_binary(frame, truth, role="truth")
    per_case = status.groupby(frame[case], sort=False).nunique()
    if (per_case > 1).any():
        raise DataError(
            f"truth differs between rows of case {_plain(per_case.idxmax())!r}; the reference "
            "standard belongs to the case: give it one truth value on every row"
        )
    require_levels(frame, reader, role="reader", minimum=2)
    require_levels(frame, modality, role="modality", minimum=2)
    require_crossed(frame, reader=reader, modality=modality, case=case)
    (i_t, mods), (i_r, readers), (i_c, cases) = (
        _factorize(frame[c]) for c in (modality, reader, case)
    )
    y = np.empty((len(mods), len(readers), len(cases)))
    y[i_t, i_r, i_c] = values.to_numpy()
    pos = np.zeros(len(cases), dtype=bool)
    pos[i_c] = status.to_numpy() == 1
    for label, count in (
        ("diseased (truth 1)", pos.sum()),
        ("non-diseased (truth 0)", (~pos).sum()),
    ):
        if count < 2:
            raise DataError(
                f"the data have {count} {label} case(s); the AUC and its jackknife need at "
                "least 2 cases of each class: add cases or check the truth column"
            )
    return y, pos, mods, readers


def mrmc(
    data: pd.DataFrame,
    *,
    reader: str,
    modality: str,
    case: str,
    truth: str,
    rating: str,
    positive_threshold: float | None = None,
    alpha: float = 0.05,
    covariance: Literal["jackknife", "delong"] = "jackknife",
) -> MRMCResult:
    """Obuchowski-Rockette MRMC ROC analysis of empirical AUCs (Hillis df).

    Parameters
    ----------
    data : pandas.DataFrame
        Long data, one row per reading: every reader reads every case under every
        modality (fully crossed; at least 2 readers, 2 modalities and 2 cases of
        each class).
    reader, modality, case, truth, rating : str
        Column names. ``truth`` is 0/1 (1 = condition present) and constant within
        a case; a higher ``rating`` means more confidence the condition is present.
    positive_threshold : float, optional
        If given, a reading with ``rating >= positive_threshold`` is positive and
        sensitivity and specificity are reported.
    alpha : float
        Two-sided level of every confidence interval.
    covariance : {"jackknife", "delong"}
        Estimator of the AUC covariances: leave-one-case-out jackknife scaled by
        ``(n-1)/n`` (OR-DBM MRMC's default) or DeLong's unbiased two-sample one.

    Returns
    -------
    MRMCResult
        ``auc`` (``reader``, ``modality``, ``auc``, ``stderr`` = sqrt of the AUC's
        own variance estimate); ``modality_auc`` (``modality``, ``auc`` = mean over
        readers, ``ms_r`` = reader mean square, ``var_error``, ``cov2``); ``anova``
        of the AUCs (``source`` T, R, TR; ``ss``, ``df``, ``ms``); ``covariance``;
        ``rrrc``, ``frrc``, ``rrfc`` (one :class:`MRMCTest` each, differences are
        ``modality_a`` minus ``modality_b`` in sorted label order, the omnibus test
        covers all modalities); ``dbm``; ``operating_points`` (``reader``,
        ``modality``, ``sensitivity``, ``specificity``) and
        ``modality_operating_points`` (their means) when a threshold is given.

    Raises
    ------
    studyhub.errors.DataError
        Missing columns or readings, a design that is not fully crossed, a single
        reader or modality, truth that is not 0/1 or has fewer than 2 cases of a
        class, or AUCs so degenerate that a test is undefined.

    Notes
    -----
    The jackknife AUCs come from DeLong's placement values in O(n log n) per
    reader and modality, identical to refitting each leave-one-out AUC. With
    ``t`` modalities, ``r`` readers and ``e = MS(T*R) + r*max(Cov2 - Cov3, 0)``:
    RRRC ``F = MS(T)/e`` on ``(t-1, ddf)``, ``ddf = e**2 / (MS(T*R)**2/((t-1)(r-1)))``;
    FRRC ``chi2 = (t-1)MS(T)/(Var - Cov1 + (r-1)max(Cov2 - Cov3, 0))``; RRFC
    ``F = MS(T)/MS(T*R)`` on ``(t-1, (t-1)(r-1))``.

    Validated against OR-DBM MRMC 2.51 (and RJafroc / MRMCaov, JAFROC 4.2.1) on the
    Van Dyke et al. (1993) data: AUCs, variance components, F, ddf, p and every
    confidence interval agree to the printed precision.

    References
    ----------
    .. [1] Obuchowski NA, Rockette HE (1995). Hypothesis testing of diagnostic
       accuracy for multiple readers and multiple tests: an ANOVA approach with
       dependent observations. Commun Stat Simul Comput 24:285-308.
    .. [2] Hillis SL (2007). A comparison of denominator degrees of freedom methods
       for multiple observer ROC analysis. Stat Med 26:596-619.
    .. [3] Hillis SL, Berbaum KS, Metz CE (2008). Recent developments in the
       Dorfman-Berbaum-Metz procedure for multireader ROC study analysis. Acad
       Radiol 15:647-661 (fixed-reader and fixed-case analyses, single-modality CIs).
    .. [4] Hillis SL, Obuchowski NA, Schartz KM, Berbaum KS (2005). A comparison of
       the Dorfman-Berbaum-Metz and Obuchowski-Rockette methods for receiver
       operating characteristic (ROC) data. Stat Med 24:1579-1607; and Hillis SL,
       Obuchowski NA, Berbaum KS (2011). Power estimation for multireader ROC
       methods: an updated and unified approach. Acad Radiol 18:129-142.
    .. [5] DeLong ER, DeLong DM, Clarke-Pearson DL (1988). Comparing the areas under
       two or more correlated receiver operating characteristic curves: a
       nonparametric approach. Biometrics 44:837-845.

    Examples
    --------
    >>> import pandas as pd
    >>> vd = pd.read_csv("tests/data/reference/vandyke_mrmc_roc/ratings_long.csv")
    >>> res = mrmc(vd, reader="reader", modality="modality", case="case", truth="truth",
    ...            rating="rating")
    >>> round(res.rrrc.f_stat, 2), round(res.rrrc.ddf, 2)
    (4.46, 15.26)
    """
    if not 0 < alpha < 1:
        raise DataError(f"alpha must be between 0 and 1, got {alpha!r}; use e.g. 0.05")
    if covariance not in ("jackknife", "delong"):
        raise DataError(
            f"covariance must be 'jackknife' or 'delong', got {covariance!r}; "
            "use 'jackknife' to match OR-DBM MRMC"
        )
    y, pos, mods, readers = _prepare(data, reader, modality, case, truth, rating)
    t, r, n = y.shape
    auc, v10, v01 = _structural(y, pos)
    jack = _jackknife_auc(y, pos)
    if covariance == "jackknife":
        dev = (jack - jack.mean(-1, keepdims=True)).reshape(t * r, n)
        cov = (n - 1) / n * dev @ dev.T
    else:
        cov = np.cov(v10.reshape(t * r, -1)) / v10.shape[-1]
        cov = cov + np.cov(v01.reshape(t * r, -1)) / v01.shape[-1]
    cov = cov.reshape(t, r, t, r)
    same_t = np.eye(t, dtype=bool)[:, None, :, None]
    same_r = np.eye(r, dtype=bool)[None, :, None, :]
    var_tr = np.einsum("ijij->ij", cov)  # variance of each AUC
    var_e = float(var_tr.mean())
    if var_e <= 0:
        raise _undefined("MRMC", "the estimated variance of every AUC is 0")
    cov1 = float(cov[~same_t & same_r].mean())
    cov2 = float(cov[same_t & ~same_r].mean())
    cov3 = float(cov[~same_t & ~same_r].mean())
    within = np.array([cov[i, :, i, :][~np.eye(r, dtype=bool)].mean() for i in range(t)])

    theta, theta_r, grand = auc.mean(1), auc.mean(0), auc.mean()
    ms_t = r * float(np.sum((theta - grand) ** 2)) / (t - 1)
    ms_r = t * float(np.sum((theta_r - grand) ** 2)) / (r - 1)
    inter = auc - theta[:, None] - theta_r[None, :] + grand
    df_tr = (t - 1) * (r - 1)
    ms_tr = float(np.sum(inter**2)) / df_tr
    ms_r_i = auc.var(axis=1, ddof=1)
    anova = _anova_table(
        ["T", "R", "TR"], [ms_t * (t - 1), ms_r * (r - 1), ms_tr * df_tr], [t - 1, r - 1, df_tr]
    )

    # random readers, random cases (Hillis 2007)
    err = ms_tr + r * max(cov2 - cov3, 0.0)
    if err <= 0:
        raise _undefined("random-reader random-case", "MS(T*R) = 0 and Cov2 <= Cov3")
    ddf = _satterthwaite(err, ms_tr, df_tr)
    err_i = ms_r_i + r * np.maximum(within, 0.0)
    df_i = np.array([_satterthwaite(e, m, r - 1) for e, m in zip(err_i, ms_r_i, strict=True)])
    rrrc = RRRCTest(
        p_value=_f_sf(ms_t / err, t - 1, ddf),
        differences=_pairs(mods, theta, 2 * err / r, ddf, alpha),
        modality_ci=_single(mods, theta, err_i / r, df_i, alpha),
        f_stat=ms_t / err,
        ndf=float(t - 1),
        ddf=ddf,
        error_term=err,
    )

    # fixed readers, random cases
    err_f = var_e - cov1 + (r - 1) * max(cov2 - cov3, 0.0)
    if err_f <= 0:
        raise _undefined("fixed-reader random-case", "Var - Cov1 + (r-1)max(Cov2-Cov3,0) <= 0")
    var_i = var_tr.mean(1)
    rows = []
    for j, rd in enumerate(readers):
        c1 = cov[:, j, :, j][~np.eye(t, dtype=bool)].mean()
        for a in range(t):
            for b in range(a + 1, t):
                v = cov[a, j, a, j] + cov[b, j, b, j] - 2 * cov[a, j, b, j]
                est = float(auc[a, j] - auc[b, j])
                row = _diff_row(mods[a], mods[b], est, math.sqrt(max(v, 0.0)), math.inf, alpha)
                rows.append([rd, float(var_tr[:, j].mean()), float(c1), *row])
    chi2 = (t - 1) * ms_t / err_f
    frrc = FRRCTest(
        p_value=float(stats.chi2.sf(chi2, t - 1)),
        differences=_pairs(mods, theta, 2 * err_f / r, math.inf, alpha),
        modality_ci=_single(
            mods,
            theta,
            (var_i + (r - 1) * np.maximum(within, 0.0)) / r,
            np.full(t, math.inf),
            alpha,
        ),
        chi2=chi2,
        df=float(t - 1),
        error_term=err_f,
        reader_differences=pd.DataFrame(rows, columns=["reader", "var_error", "cov1", *_DIFF_COLS]),
    )

    # random readers, fixed cases
    if ms_tr <= 0:
        raise _undefined("random-reader fixed-case", "MS(T*R) = 0")
    rrfc = RRFCTest(
        p_value=_f_sf(ms_t / ms_tr, t - 1, df_tr),
        differences=_pairs(mods, theta, 2 * ms_tr / r, float(df_tr), alpha),
        modality_ci=_single(mods, theta, ms_r_i / r, np.full(t, r - 1.0), alpha),
        f_stat=ms_t / ms_tr,
        ndf=float(t - 1),
        ddf=float(df_tr),
        error_term=ms_tr,
    )

    var_r = (ms_r - ms_tr) / t - cov1 + cov3
    covs = ORCovariance(
        var_error=var_e,
        cov1=cov1,
        cov2=cov2,
        cov3=cov3,
        var_r=var_r,
        var_tr=ms_tr - var_e + cov1 + cov2 - cov3,
        corr1=cov1 / var_e,
        corr2=cov2 / var_e,
        corr3=cov3 / var_e,
        method=covariance,
    )
    grid = {"reader": np.tile(readers, t), "modality": np.repeat(mods, r)}
    auc_table = pd.DataFrame(grid | {"auc": auc.ravel(), "stderr": np.sqrt(var_tr.ravel())})
    modality_auc = pd.DataFrame(
        {"modality": mods, "auc": theta, "ms_r": ms_r_i, "var_error": var_i, "cov2": within}
    )
    points = means = None
    if positive_threshold is not None:
        hit = y >= positive_threshold
        sens, spec = hit[..., pos].mean(-1), (~hit[..., ~pos]).mean(-1)
        points = pd.DataFrame(grid | {"sensitivity": sens.ravel(), "specificity": spec.ravel()})
        means = pd.DataFrame(
            {"modality": mods, "sensitivity": sens.mean(1), "specificity": spec.mean(1)}
        )
    return MRMCResult(
        auc=auc_table,
        modality_auc=modality_auc,
        anova=anova,
        covariance=covs,
        rrrc=rrrc,
        frrc=frrc,
        rrfc=rrfc,
        dbm=_dbm(jack, auc, mods, alpha),
        operating_points=points,
        modality_operating_points=means,
        n_readers=r,
        n_modalities=t,
        n_cases=n,
        n_positive=int(pos.sum()),
        n_negative=int((~pos).sum()),
        alpha=alpha,
    )
