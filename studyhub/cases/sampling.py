"""Retrospective sampling: stratified quotas, enrichment of errors, diversity.

The strategies combine. Cases are first split into strata (label, prediction
correctness, calibrated-confidence bin or any metadata column); each stratum
gets an exact quota (given, or proportional to the pool by largest remainders).
Inside a stratum, errors and low-confidence cases are drawn first up to the
stratum's share of the enrichment targets, then the rest; each draw is a
**k-center greedy** step on the model's penultimate-layer embeddings (the case
farthest from everything drawn so far), so near-duplicates are not all drawn.
Everything random comes from one seed, so the same pool and plan give the same
cases.

References
----------
Sener O, Savarese S (2018). Active learning for convolutional neural networks: a
core-set approach. ICLR. (k-center greedy.)
Austin PC (2009). Balance diagnostics for comparing the distribution of baseline
covariates between treatment groups. Stat Med 28:3083-3107. (Standardized differences.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from studyhub.errors import DataError
from studyhub.protocol.consistency import bin_names
from studyhub.protocol.schema import Sampling

__all__ = [
    "MODEL_STRATA",
    "SampleDraw",
    "confidence_bins",
    "diversity_figure",
    "draw_sample",
    "k_center_greedy",
    "sample_problems",
    "standardized_differences",
    "strata_keys",
]

#: Columns every pool frame carries besides metadata.
CORE = ("key", "label", "correct", "confidence")

#: Strata that need the model's predictions of every eligible case.
MODEL_STRATA = ("correctness", "confidence_bin")

NO_ELIGIBLE = "no eligible cases in the pool; widen eligibility or check the data source"


def confidence_bins(confidence: pd.Series, cuts: list[float]) -> pd.Series:
    """Label calibrated confidences by the bins ``[0, c1), [c1, c2), ..., [ck, 1]``."""
    edges = [0.0, *sorted(cuts), 1.0 + 1e-12]
    return pd.Series(
        pd.cut(confidence, bins=edges, labels=bin_names(cuts), right=False).astype(str),
        index=confidence.index,
    )


def _unknown_strata(pool: pd.DataFrame, plan: Sampling) -> list[str]:
    """``stratify.by`` names that are neither built-in strata nor metadata columns."""
    if plan.stratify is None:
        return []
    columns = [c for c in pool.columns if c not in ("key", "confidence", "correct")]
    problems = []
    for name in plan.stratify.by:
        if name in MODEL_STRATA or name in columns:
            continue
        known = ["label", *MODEL_STRATA] + [c for c in pool.columns if c not in CORE]
        problems.append(
            f"sampling.stratify.by names {name!r}, which is neither a built-in stratum nor "
            f"a metadata column of the data; use one of {', '.join(known)}"
        )
    return problems


def strata_keys(pool: pd.DataFrame, plan: Sampling) -> pd.Series:
    """Each case's stratum as text: the values of the ``stratify.by`` fields joined by '|'."""
    if plan.stratify is None:
        return pd.Series("all", index=pool.index)
    problems = _unknown_strata(pool, plan)
    if problems:
        raise DataError(problems[0])
    parts: list[pd.Series] = []
    for name in plan.stratify.by:
        if name == "correctness":
            parts.append(pool["correct"].map({True: "correct", False: "error"}))
        elif name == "confidence_bin":
            parts.append(confidence_bins(pool["confidence"], plan.stratify.confidence_bins))
        else:
            parts.append(pool[name].astype(str))
    key = parts[0]
    for p in parts[1:]:
        key = key + "|" + p
    return key


def sample_problems(pool: pd.DataFrame, plan: Sampling) -> list[str]:
    """Every reason :func:`draw_sample` would refuse to draw ``plan`` from ``pool``.

    Parameters
    ----------
    pool : pandas.DataFrame
        The eligible cases, as :func:`draw_sample` takes them. The ``correct`` and
        ``confidence`` columns are needed only when ``stratify.by`` names a
        model stratum (:data:`MODEL_STRATA`).
    plan : Sampling
        The protocol's sampling plan.

    Returns
    -------
    list of str
        Each problem with the value found and its fix (empty: the plan can be
        drawn): no eligible case, an unknown stratum, quotas that do not add up
        to ``n_cases`` or exceed what a stratum holds, ``n_cases`` larger than
        the eligible pool.
    """
    if len(pool) == 0:
        return [NO_ELIGIBLE]
    problems = _unknown_strata(pool, plan)
    if problems:
        return problems
    counts = strata_keys(pool, plan).value_counts().sort_index()
    return _quota_problems(counts, plan)


def k_center_greedy(
    embeddings: np.ndarray,
    candidates: np.ndarray,
    k: int,
    *,
    chosen: np.ndarray | None = None,
    rng: np.random.Generator,
) -> np.ndarray:
    """Pick ``k`` of ``candidates`` (row indices), each farthest from all picked so far.

    ``chosen`` are rows already in the sample (their distances count); when it is
    empty the first pick is a seeded random candidate.
    """
    if k <= 0 or candidates.size == 0:
        return np.zeros(0, dtype=int)
    points = embeddings[candidates]
    nearest = np.full(candidates.size, np.inf)
    if chosen is not None and chosen.size:
        for row in chosen:
            nearest = np.minimum(nearest, np.linalg.norm(points - embeddings[row], axis=1))
    picked: list[int] = []
    available = np.ones(candidates.size, dtype=bool)
    for _ in range(min(k, candidates.size)):
        if np.isinf(nearest[available]).all():
            idx = int(rng.choice(np.flatnonzero(available)))
        else:
            masked = np.where(available, nearest, -np.inf)
            idx = int(np.argmax(masked))
        picked.append(idx)
        available[idx] = False
        nearest = np.minimum(nearest, np.linalg.norm(points - points[idx], axis=1))
    return candidates[np.asarray(picked, dtype=int)]


def _random_pick(candidates: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    if k <= 0 or candidates.size == 0:
        return np.zeros(0, dtype=int)
    return np.asarray(rng.choice(candidates, size=min(k, candidates.size), replace=False))


def _quota_problems(counts: pd.Series, plan: Sampling) -> list[str]:
    """Why the quotas (or ``n_cases``) cannot be met from ``counts`` eligible cases per stratum."""
    n = plan.n_cases
    if plan.stratify is None or plan.stratify.quotas is None:
        if n > int(counts.sum()):
            return [
                f"sampling.n_cases is {n} but only {int(counts.sum())} eligible cases exist; "
                "lower n_cases or widen eligibility"
            ]
        return []
    problems = []
    quotas = dict(plan.stratify.quotas)
    total = sum(quotas.values())
    if total != n:
        problems.append(
            f"sampling.stratify.quotas add up to {total} but sampling.n_cases is {n}; "
            "make the quotas sum to n_cases"
        )
    unknown = sorted(set(quotas) - set(counts.index))
    short = {s: (q, int(counts.get(s, 0))) for s, q in quotas.items() if q > counts.get(s, 0)}
    if short:
        detail = "; ".join(
            f"stratum {s!r} needs {q} but only {have} eligible cases exist"
            for s, (q, have) in sorted(short.items())
        )
        hint = f" (strata in the pool: {', '.join(map(str, counts.index))})" if unknown else ""
        problems.append(
            f"sampling.stratify.quotas cannot be met: {detail}{hint}; lower those quotas, widen "
            "eligibility or add cases to the pool"
        )
    return problems


def _quotas(strata: pd.Series, plan: Sampling) -> dict[str, int]:
    counts = strata.value_counts().sort_index()
    problems = _quota_problems(counts, plan)
    if problems:
        raise DataError(problems[0])
    n = plan.n_cases
    if plan.stratify is not None and plan.stratify.quotas is not None:
        return {s: int(q) for s, q in plan.stratify.quotas.items() if q > 0}
    # proportional allocation by largest remainders (Hamilton)
    exact = counts / counts.sum() * n
    base = pd.Series(np.floor(exact.to_numpy()).astype(int), index=exact.index)
    rest = n - int(base.sum())
    order = (exact - base).sort_values(ascending=False, kind="stable").index[:rest]
    base.loc[order] += 1
    return {str(s): int(q) for s, q in base.items() if q > 0}


@dataclass(frozen=True)
class SampleDraw:
    """The drawn cases (pool row labels, in draw order) and what the draw met."""

    rows: list[Any]
    strata: pd.Series
    quotas: dict[str, int]
    enrichment: dict[str, dict[str, float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def draw_sample(
    pool: pd.DataFrame, embeddings: np.ndarray | None, plan: Sampling, *, seed: int
) -> SampleDraw:
    """Draw ``plan.n_cases`` cases from the eligible ``pool``.

    Parameters
    ----------
    pool
        One row per eligible case: ``key``, ``label``, ``correct`` (bool),
        ``confidence`` (calibrated probability of the predicted class) and any
        metadata columns. Row order must be stable (it is the tie-breaker).
    embeddings
        ``(len(pool), d)`` penultimate-layer features; needed for ``k_center``.
    plan
        The protocol's sampling plan.
    seed
        The protocol's seed.
    """
    if len(pool) == 0:
        raise DataError(NO_ELIGIBLE)
    if plan.diversity == "k_center" and (embeddings is None or len(embeddings) != len(pool)):
        raise DataError(
            "diversity sampling needs one embedding per eligible case; use sampling.diversity: "
            "none or a model with a penultimate layer"
        )
    rng = np.random.default_rng(seed)
    frame = pool.reset_index(drop=True)
    strata = strata_keys(frame, plan)
    quotas = _quotas(strata, plan)
    low = frame["confidence"] < plan.enrich.low_confidence_below
    err = ~frame["correct"].astype(bool)
    n = plan.n_cases
    targets = {
        "errors": math.ceil(plan.enrich.errors * n - 1e-9),
        "low_confidence": math.ceil(plan.enrich.low_confidence * n - 1e-9),
    }
    flags = {"errors": err.to_numpy(), "low_confidence": low.to_numpy()}
    emb = np.asarray(embeddings, dtype=np.float64) if embeddings is not None else None

    def pick(cands: np.ndarray, k: int, chosen: np.ndarray) -> np.ndarray:
        if plan.diversity == "k_center" and emb is not None:
            return k_center_greedy(emb, cands, k, chosen=chosen, rng=rng)
        return _random_pick(cands, k, rng)

    # split each enrichment target across strata in proportion to what they hold
    stratum_ids = {s: np.flatnonzero((strata == s).to_numpy()) for s in quotas}
    selected: list[int] = []
    notes: list[str] = []
    for s, quota in sorted(quotas.items()):
        rows = stratum_ids[s]
        chosen = np.zeros(0, dtype=int)
        for name in ("errors", "low_confidence"):
            if targets[name] == 0:
                continue
            have = int(flags[name].sum())
            share = targets[name] * flags[name][rows].sum() / have if have else 0.0
            already = int(flags[name][chosen].sum())
            want = min(quota - chosen.size, max(0, math.ceil(share - 1e-9) - already))
            cands = np.setdiff1d(rows[flags[name][rows]], chosen)
            chosen = np.concatenate([chosen, pick(cands, want, chosen)])
        rest = np.setdiff1d(rows, chosen)
        chosen = np.concatenate([chosen, pick(rest, quota - chosen.size, chosen)])
        selected.extend(int(i) for i in chosen)
    sel = np.asarray(selected, dtype=int)
    enrichment: dict[str, dict[str, float]] = {}
    for name, target in targets.items():
        got = int(flags[name][sel].sum())
        enrichment[name] = {
            "target_share": float(getattr(plan.enrich, name)),
            "achieved_share": got / len(sel),
            "count": float(got),
            "available": float(flags[name].sum()),
        }
        if got < target:
            available = int(flags[name].sum())
            why = (
                "the quotas left no room"
                if available >= target
                else f"the pool holds only {available}"
            )
            notes.append(
                f"enrichment of {name.replace('_', '-')} cases reached {got} of {target}: {why}"
            )
    return SampleDraw(
        rows=[frame.index[i] for i in sel],
        strata=strata,
        quotas=quotas,
        enrichment=enrichment,
        notes=notes,
    )


def standardized_differences(
    pool: pd.DataFrame, sample: pd.DataFrame, columns: list[str]
) -> pd.DataFrame:
    """Standardized mean differences (sample minus pool) of metadata columns.

    Numeric columns: ``(mean_s - mean_p) / sqrt((var_s + var_p) / 2)``. Other
    columns: one row per level, on the level's proportion. |d| < 0.1 is the usual
    sign of balance (Austin 2009).
    """
    rows: list[dict[str, Any]] = []
    for col in columns:
        p, s = pool[col], sample[col]
        numeric = pd.api.types.is_numeric_dtype(p) and not pd.api.types.is_bool_dtype(p)
        if numeric:
            pv, sv = p.astype(float), s.astype(float)
            pooled = math.sqrt((float(pv.var(ddof=1) or 0) + float(sv.var(ddof=1) or 0)) / 2)
            d = (sv.mean() - pv.mean()) / pooled if pooled > 0 else 0.0
            rows.append(
                {
                    "variable": col,
                    "level": "",
                    "pool": pv.mean(),
                    "sample": sv.mean(),
                    "std_diff": d,
                }
            )
            continue
        pl, sl = _levels(p), _levels(s)
        for level in sorted(pl.unique()):
            pp = float((pl == level).mean())
            ps = float((sl == level).mean())
            pooled = math.sqrt((pp * (1 - pp) + ps * (1 - ps)) / 2)
            d = (ps - pp) / pooled if pooled > 0 else 0.0
            rows.append({"variable": col, "level": level, "pool": pp, "sample": ps, "std_diff": d})
    return pd.DataFrame(rows, columns=["variable", "level", "pool", "sample", "std_diff"])


def _levels(values: pd.Series) -> pd.Series:
    """Categorical values as text, a missing value as the level ``"(missing)"``."""
    return values.map(lambda v: "(missing)" if pd.isna(v) else str(v)).astype(object)


def _mean_nn_distance(points: np.ndarray) -> float:
    if len(points) < 2:
        return 0.0
    d = np.linalg.norm(points[:, None, :] - points[None, :, :], axis=2)
    np.fill_diagonal(d, np.inf)
    return float(d.min(axis=1).mean())


def _coverage_radius(embeddings: np.ndarray, rows: np.ndarray) -> float:
    """The largest distance from any pool case to its nearest sampled case."""
    nearest = np.full(len(embeddings), np.inf)
    for row in rows:
        nearest = np.minimum(nearest, np.linalg.norm(embeddings - embeddings[row], axis=1))
    return float(nearest.max())


def diversity_figure(
    embeddings: np.ndarray, sample_rows: np.ndarray, *, seed: int, n_random: int = 50
) -> dict[str, float]:
    """How spread out the sample is, against random samples of the same size from the pool.

    ``*_mean_nn_distance``: mean distance from each sampled case to its nearest other
    sampled case (higher: fewer near-duplicates). ``*_coverage_radius``: the largest
    distance from a pool case to the sample (lower: the pool is better covered).
    ``ratio`` is the sample's mean nearest-neighbour distance over the random mean.
    """
    embeddings = np.asarray(embeddings, dtype=np.float64)
    size = len(sample_rows)
    rng = np.random.default_rng(seed + 1)
    draws = [rng.choice(len(embeddings), size=size, replace=False) for _ in range(n_random)]
    randoms = [_mean_nn_distance(embeddings[d]) for d in draws]
    sample = _mean_nn_distance(embeddings[sample_rows])
    mean_random = float(np.mean(randoms))
    return {
        "sample_mean_nn_distance": sample,
        "random_mean_nn_distance": mean_random,
        "random_sd": float(np.std(randoms, ddof=1)) if n_random > 1 else 0.0,
        "ratio": sample / mean_random if mean_random > 0 else float("inf"),
        "sample_coverage_radius": _coverage_radius(embeddings, sample_rows),
        "random_coverage_radius": float(
            np.mean([_coverage_radius(embeddings, d) for d in draws[:10]])
        ),
        "n_random": float(n_random),
    }
