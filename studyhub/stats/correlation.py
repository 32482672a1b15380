"""Correlation between rater judgements and a quantitative metric of each stimulus.

Reader studies ask whether what experts say about an explanation (a rating of
its plausibility or usefulness) tracks a quantitative metric of the same
stimulus (e.g. faithfulness, localisation or complexity). Ratings of one case
are correlated (several raters, several arms), so the interval resamples
cases, not rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

from studyhub.errors import DataError
from studyhub.stats._data import (
    require_columns,
    require_levels,
    require_numeric,
    require_variation,
)

__all__ = ["MetricCorrelationResult", "metric_correlation"]

FloatArray = np.ndarray
_BOOT_CHUNK_CELLS = 4_000_000  # floats held at once by one bootstrap chunk


@dataclass(frozen=True)
class MetricCorrelationResult:
    """Spearman correlation of ratings with a metric, with a case-clustered bootstrap.

    ``n_cases`` counts the cases (clusters), ``n_ratings`` the rating rows used.
    ``per_rater`` (when ``raters`` was given) is indexed by rater with columns
    ``n_ratings`` and ``estimate`` (point estimates only) and ``note``, which
    says why a rater's value is missing when it is undefined.
    """

    estimate: float
    ci_low: float
    ci_high: float
    p_value: float
    n_cases: int
    n_ratings: int
    confidence: float
    n_boot: int
    n_boot_used: int
    seed: int
    method: str = "spearman"
    per_rater: pd.DataFrame | None = None


class _WeightedSpearman:
    """Spearman's rho of rows that carry integer weights (bootstrap multiplicities).

    A row drawn ``w`` times occupies ``w`` positions in the resample, so a tie
    group with total weight ``W_g`` and ``C_g`` weight before it has mid-rank
    ``C_g + (W_g + 1) / 2``; rho is then the weighted Pearson correlation of
    the mid-ranks. With unit weights this is the ordinary Spearman rho.
    """

    def __init__(self, x: FloatArray, y: FloatArray) -> None:
        self.n = x.size
        self.groups_x = self._groups(x)
        self.groups_y = self._groups(y)

    @staticmethod
    def _groups(v: FloatArray) -> tuple[FloatArray, sparse.csr_matrix]:
        _, codes = np.unique(v, return_inverse=True)
        onehot = sparse.csr_matrix(
            (np.ones(v.size), (np.arange(v.size), codes)), shape=(v.size, int(codes.max()) + 1)
        )
        return codes, onehot

    @staticmethod
    def _ranks(w: FloatArray, groups: tuple[FloatArray, sparse.csr_matrix]) -> FloatArray:
        codes, onehot = groups
        group_w = np.asarray(onehot.T @ w.T).T  # resamples x tie groups
        mid = np.cumsum(group_w, axis=1) - group_w + (group_w + 1.0) / 2.0
        return mid[:, codes]

    def rho(self, w: FloatArray) -> FloatArray:
        """Spearman's rho for each row of ``w`` (resamples x rows)."""
        rx = self._ranks(w, self.groups_x)
        ry = self._ranks(w, self.groups_y)
        total = w.sum(axis=1, keepdims=True)
        dx = rx - (w * rx).sum(axis=1, keepdims=True) / total
        dy = ry - (w * ry).sum(axis=1, keepdims=True) / total
        sxy = (w * dx * dy).sum(axis=1)
        sxx = (w * dx * dx).sum(axis=1)
        syy = (w * dy * dy).sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return sxy / np.sqrt(sxx * syy)


def _check_settings(n_boot: int, confidence: float) -> tuple[int, float]:
    if isinstance(n_boot, bool) or not isinstance(n_boot, int | np.integer) or n_boot < 100:
        raise DataError(
            f"n_boot is {n_boot!r}; pass an integer of at least 100 (2000 is the default)"
        )
    if not isinstance(confidence, int | float) or not 0.0 < float(confidence) < 1.0:
        raise DataError(
            f"confidence is {confidence!r}; pass a level strictly between 0 and 1, e.g. 0.95"
        )
    return int(n_boot), float(confidence)


def metric_correlation(
    data: pd.DataFrame,
    *,
    cases: str,
    ratings: str,
    metric: str,
    raters: str | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> MetricCorrelationResult:
    """Spearman correlation between ratings and a metric, with a case-clustered bootstrap.

    Parameters
    ----------
    data : pandas.DataFrame
        Long data, one row per rating, each row carrying the metric of the
        stimulus it rates. Rows with a missing rating or metric are dropped
        (``n_ratings`` reports the rows used).
    cases : str
        Column naming the case; all rows of one case (every rater, every arm)
        form one cluster of the bootstrap.
    ratings : str
        Column of numeric (ordinal or continuous) rater judgements.
    metric : str
        Column of the numeric metric of the rated stimulus.
    raters : str, optional
        Column naming the rater; when given, ``per_rater`` holds each rater's
        own Spearman correlation.
    n_boot : int, default 2000
        Number of bootstrap resamples (at least 100).
    seed : int, default 0
        Seed of the bootstrap's random generator (``numpy.random.default_rng``).
    confidence : float, default 0.95
        Level of the percentile interval.

    Returns
    -------
    MetricCorrelationResult
        ``estimate`` (Spearman's rho over all rating rows, mid-ranks for ties),
        ``ci_low``, ``ci_high``, ``p_value``, ``n_cases``, ``n_ratings`` and
        ``per_rater``.

    Raises
    ------
    DataError
        Missing columns, non-numeric or constant ratings or metric, or fewer
        than 3 cases.

    Notes
    -----
    The interval is a percentile bootstrap that resamples **cases** with all
    their rows (Field & Welsh 2007), so ratings of one case by several raters
    or of several arms are not treated as independent. Each resample is
    computed exactly, without materialising it: a case drawn ``w`` times gives
    its rows weight ``w`` and ties get weighted mid-ranks.

    The two-sided ``p_value`` for H0: rho = 0 inverts the same bootstrap: it
    is ``2 * min(1 + #{rho* <= 0}, 1 + #{rho* >= 0}) / (n_boot + 1)``, capped
    at 1, i.e. about the smallest ``1 - confidence`` at which the percentile
    interval excludes 0 (its smallest value is ``2 / (n_boot + 1)``).

    Validated against ``scipy.stats.spearmanr`` (point estimate, to 1e-12,
    with ties) and against explicit resampling of cases (bootstrap replicates,
    to 1e-12); interval coverage of the population rho was checked by
    simulation (200 data sets) in the tests.

    References
    ----------
    .. [1] Spearman C (1904). The proof and measurement of association
       between two things. American Journal of Psychology 15:72-101.
    .. [2] Field CA, Welsh AH (2007). Bootstrapping clustered data. Journal of
       the Royal Statistical Society B 69(3):369-390.
    .. [3] Efron B, Tibshirani RJ (1993). An Introduction to the Bootstrap.
       Chapman & Hall (percentile interval, ch. 13).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> ratings = pd.DataFrame(
    ...     [{"rater": f"r{r}", "case": f"c{c}", "arm": arm,
    ...       "score": float(np.clip(np.rint(3 + eff + rng.normal(0, 0.8)), 1, 5))}
    ...      for r in range(5) for c in range(20) for arm, eff in (("ig", 1.0), ("random", 0.0))])
    >>> data = ratings.assign(metric=ratings["score"] + rng.normal(0, 1, len(ratings)))
    >>> res = metric_correlation(data, cases="case", ratings="score", metric="metric",
    ...                          n_boot=200, seed=0)
    >>> round(res.estimate, 2), bool(res.ci_low > 0)
    (0.64, True)
    """
    n_boot, confidence = _check_settings(n_boot, confidence)
    frame = require_columns(
        data,
        cases=cases,
        ratings=ratings,
        metric=metric,
        raters=raters,
        missing_ok=("ratings", "metric"),
    )
    if len({cases, ratings, metric}) != 3:
        raise DataError(
            f"cases={cases!r}, ratings={ratings!r} and metric={metric!r} must be three "
            "different columns"
        )
    frame = frame.assign(
        **{
            ratings: require_numeric(frame, ratings, role="ratings"),
            metric: require_numeric(frame, metric, role="metric"),
        }
    )
    frame = frame[frame[ratings].notna() & frame[metric].notna()]
    require_levels(frame, cases, role="cases", minimum=3)
    require_variation(frame[ratings], role="ratings", column=ratings)
    require_variation(frame[metric], role="metric", column=metric)

    x = frame[ratings].to_numpy(float)
    y = frame[metric].to_numpy(float)
    case_codes, case_labels = pd.factorize(frame[cases])
    n_cases = len(case_labels)
    spearman = _WeightedSpearman(x, y)
    estimate = float(spearman.rho(np.ones((1, x.size)))[0])

    rng = np.random.default_rng(seed)
    boot = np.empty(n_boot)
    chunk = max(1, _BOOT_CHUNK_CELLS // (4 * x.size))
    for start in range(0, n_boot, chunk):
        stop = min(start + chunk, n_boot)
        draws = rng.multinomial(n_cases, np.full(n_cases, 1.0 / n_cases), size=stop - start)
        boot[start:stop] = spearman.rho(draws[:, case_codes].astype(float))
    finite = boot[np.isfinite(boot)]
    if finite.size < 0.9 * n_boot:
        raise DataError(
            f"the correlation is undefined in {n_boot - finite.size} of {n_boot} bootstrap "
            f"resamples of the {n_cases} cases (ratings or metric constant within most "
            "cases); use more cases"
        )
    tail = (1.0 - confidence) / 2.0
    ci_low, ci_high = (float(v) for v in np.quantile(finite, [tail, 1.0 - tail]))
    below = 1 + int((finite <= 0.0).sum())
    above = 1 + int((finite >= 0.0).sum())
    p_value = min(1.0, 2.0 * min(below, above) / (finite.size + 1))

    per_rater = None
    if raters is not None:
        per_rater = _per_rater(frame, raters=raters, ratings=ratings, metric=metric)
    return MetricCorrelationResult(
        estimate=estimate,
        ci_low=ci_low,
        ci_high=ci_high,
        p_value=p_value,
        n_cases=n_cases,
        n_ratings=int(x.size),
        confidence=confidence,
        n_boot=n_boot,
        n_boot_used=int(finite.size),
        seed=seed,
        per_rater=per_rater,
    )


def _per_rater(frame: pd.DataFrame, *, raters: str, ratings: str, metric: str) -> pd.DataFrame:
    rows: dict[object, dict[str, object]] = {}
    for rater, sub in frame.groupby(raters, sort=True):
        x = sub[ratings].to_numpy(float)
        y = sub[metric].to_numpy(float)
        if x.size < 3 or np.all(x == x[0]) or np.all(y == y[0]):
            rho, note = float("nan"), "undefined: fewer than 3 ratings or no variation"
        else:
            rho, note = float(_WeightedSpearman(x, y).rho(np.ones((1, x.size)))[0]), ""
        rows[rater] = {"n_ratings": int(x.size), "estimate": rho, "note": note}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = raters
    return table.astype({"n_ratings": int, "estimate": float})
