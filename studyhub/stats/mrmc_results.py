"""The results of :func:`studyhub.stats.mrmc.mrmc`: covariances, F tests, DBM ANOVA.

Typed, frozen records with snake_case attributes; the tables are data frames
whose columns :func:`~studyhub.stats.mrmc.mrmc` documents.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

__all__ = [
    "DBMAnalysis",
    "FRRCTest",
    "FTest",
    "MRMCResult",
    "MRMCTest",
    "ORCovariance",
    "RRFCTest",
    "RRRCTest",
]


@dataclass(frozen=True)
class ORCovariance:
    """OR error variance and jackknife (or DeLong) covariances, averaged by class.

    ``var_error`` is the mean variance of an AUC; ``cov1`` same reader, different
    modalities; ``cov2`` different readers, same modality; ``cov3`` different
    readers and modalities. ``var_r`` and ``var_tr`` are the OR reader and
    modality-by-reader variance components; ``corr1..3`` are ``cov1..3 / var_error``.
    """

    var_error: float
    cov1: float
    cov2: float
    cov3: float
    var_r: float
    var_tr: float
    corr1: float
    corr2: float
    corr3: float
    method: str


@dataclass(frozen=True)
class MRMCTest:
    """One analysis (random/fixed readers and cases) of the modality AUCs.

    ``differences`` has one row per pair of modalities (``modality_a`` minus
    ``modality_b``) with ``estimate``, ``stderr``, ``statistic`` (t or z),
    ``df`` (``inf`` for z), ``p_value``, ``ci_low``, ``ci_high``.
    ``modality_ci`` has the single-modality AUC confidence intervals (``modality``,
    ``auc``, ``stderr``, ``df``, ``ci_low``, ``ci_high``). ``estimate``,
    ``stderr``, ``ci_low``, ``ci_high`` are those of the first pair.
    """

    p_value: float
    differences: pd.DataFrame
    modality_ci: pd.DataFrame

    def _first(self, name: str) -> float:
        return float(self.differences[name].iloc[0])

    @property
    def estimate(self) -> float:
        """AUC of the first modality minus that of the second."""
        return self._first("estimate")

    @property
    def stderr(self) -> float:
        """Standard error of :attr:`estimate`."""
        return self._first("stderr")

    @property
    def ci_low(self) -> float:
        """Lower confidence limit of :attr:`estimate`."""
        return self._first("ci_low")

    @property
    def ci_high(self) -> float:
        """Upper confidence limit of :attr:`estimate`."""
        return self._first("ci_high")


@dataclass(frozen=True)
class FTest(MRMCTest):
    """An F test of equal modality AUCs: ``f_stat = MS(T) / error_term`` on ``(ndf, ddf)``."""

    f_stat: float
    ndf: float
    ddf: float
    error_term: float


@dataclass(frozen=True)
class RRRCTest(FTest):
    """Random readers, random cases: OR F test with Hillis (2007) ``ddf``."""


@dataclass(frozen=True)
class FRRCTest(MRMCTest):
    """Fixed readers, random cases: OR chi-square test (``df = t - 1``).

    ``reader_differences`` holds the single-reader z tests (``reader``,
    ``var_error``, ``cov1`` and the ``differences`` columns).
    """

    chi2: float
    df: float
    error_term: float
    reader_differences: pd.DataFrame


@dataclass(frozen=True)
class RRFCTest(FTest):
    """Random readers, fixed cases: F test on ``MS(T*R)`` with ``(t-1)(r-1)`` df."""


@dataclass(frozen=True)
class DBMAnalysis:
    """DBM pseudovalue ANOVA, variance components and its fixed-reader F test.

    ``anova`` has ``source`` (T, R, C, TR, TC, RC, TRC), ``ss``, ``df``, ``ms``. The
    random-reader tests equal the OR ones; ``frrc`` uses ``MS(TC)`` with
    ``(t-1)(n-1)`` df (t-based, unlike the OR chi-square).
    """

    anova: pd.DataFrame
    var_r: float
    var_c: float
    var_tr: float
    var_tc: float
    var_rc: float
    var_trc_error: float
    error_ms: float
    frrc: FTest


@dataclass(frozen=True)
class MRMCResult:
    """Result of :func:`mrmc`; see its docstring for every table's columns."""

    auc: pd.DataFrame
    modality_auc: pd.DataFrame
    anova: pd.DataFrame
    covariance: ORCovariance
    rrrc: RRRCTest
    frrc: FRRCTest
    rrfc: RRFCTest
    dbm: DBMAnalysis
    operating_points: pd.DataFrame | None
    modality_operating_points: pd.DataFrame | None
    n_readers: int
    n_modalities: int
    n_cases: int
    n_positive: int
    n_negative: int
    alpha: float
