"""Power and type I error of a planned reader study, by simulation.

The planned design (raters x cases x arms, fully crossed) is simulated from a
linear mixed model with the given variance components (rater, case, rater x
arm, case x arm, rater x case, residual), and each simulated study is analysed
with the plan's primary test, so the power and the type I error refer to the
analysis that will be run, including its multiplicity adjustment. For the
mixed model the simulated model and the analysed model are the same one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from studyhub.errors import DataError
from studyhub.stats._arms import random_terms, require_model_sizes
from studyhub.stats._balanced import balanced_mixed_model_test
from studyhub.stats.bootstrap_variance import two_way_t_tests
from studyhub.stats.compare import HYPOTHESES, wilcoxon_signed_rank
from studyhub.stats.multiplicity import MULTIPLICITY_METHODS, adjust_pvalue_matrix

__all__ = ["PowerResult", "balanced_mixed_model_test", "power_simulation"]

POWER_METHODS = ("mixed_model", "cluster_bootstrap", "friedman")


@dataclass(frozen=True)
class PowerResult:
    """Result of :func:`power_simulation`.

    Attributes
    ----------
    power, power_mcse : float
        Probability that the first contrast (the tested arm versus the
        reference) is rejected after the multiplicity adjustment, and its Monte
        Carlo standard error ``sqrt(p (1 - p) / n_sims)``.
    type_i_error, type_i_error_mcse : float
        Family-wise rejection rate when every arm differs from the reference by
        0 (superiority, two-sided) or by exactly ``-margin`` (non-inferiority),
        and its Monte Carlo standard error.
    per_contrast : pandas.DataFrame
        ``contrast``, ``effect``, ``power``, ``power_mcse``, ``type_i_error``,
        ``type_i_error_mcse`` per non-reference arm.
    design : dict
        The simulated design and analysis (sizes, SDs, method, hypothesis ...).
    n_sims, seed : int
    """

    power: float
    power_mcse: float
    type_i_error: float
    type_i_error_mcse: float
    per_contrast: pd.DataFrame
    design: dict[str, Any]
    n_sims: int
    seed: int


def _simulate(
    rng: np.random.Generator,
    n_sims: int,
    effects: np.ndarray,
    n_raters: int,
    n_cases: int,
    sd: dict[str, float],
) -> np.ndarray:
    """Ratings of shape (n_sims, n_arms, n_raters, n_cases)."""
    n_arms = effects.size
    shape = (n_sims, n_arms, n_raters, n_cases)
    y = rng.normal(0.0, sd["residual"], size=shape)
    y += effects[None, :, None, None]
    y += rng.normal(0.0, sd["rater"], size=(n_sims, 1, n_raters, 1))
    y += rng.normal(0.0, sd["case"], size=(n_sims, 1, 1, n_cases))
    if sd["rater_arm"] > 0:
        y += rng.normal(0.0, sd["rater_arm"], size=(n_sims, n_arms, n_raters, 1))
    if sd["case_arm"] > 0:
        y += rng.normal(0.0, sd["case_arm"], size=(n_sims, n_arms, 1, n_cases))
    if sd["rater_case"] > 0:
        y += rng.normal(0.0, sd["rater_case"], size=(n_sims, 1, n_raters, n_cases))
    return y


#: Simulated studies per chunk at most. Each chunk draws from its own generator, seeded
#: by (seed, scenario, chunk), so the result is the same however many processes run them.
CHUNK_SIMS = 250

ChunkMap = Callable[[Callable[[Any], np.ndarray], Sequence[Any]], list[np.ndarray]]


@dataclass(frozen=True)
class _Chunk:
    """Some simulated studies of one scenario: everything needed to simulate and test them."""

    seed: int
    scenario: int  # 0: the planned effects, 1: every effect at the null
    index: int
    n_sims: int
    effects: np.ndarray
    n_raters: int
    n_cases: int
    sd: dict[str, float]
    method: str
    null: float
    hypothesis: str
    n_boot: int
    terms: dict[str, bool]
    multiplicity: str
    alpha: float


def _run_chunk(chunk: _Chunk) -> np.ndarray:
    """Rejections ``(n_sims, n_arms - 1)`` of one chunk; a pure function of the chunk."""
    rng = np.random.default_rng([chunk.seed, chunk.scenario, chunk.index])
    y = _simulate(rng, chunk.n_sims, chunk.effects, chunk.n_raters, chunk.n_cases, chunk.sd)
    p = _pvalues(
        y,
        method=chunk.method,
        null=chunk.null,
        hypothesis=chunk.hypothesis,
        n_boot=chunk.n_boot,
        rng=rng,
        terms=chunk.terms,
    )
    return np.asarray(adjust_pvalue_matrix(p, chunk.multiplicity) <= chunk.alpha)


def _pvalues(
    y: np.ndarray,
    *,
    method: str,
    null: float,
    hypothesis: str,
    n_boot: int,
    rng: np.random.Generator,
    terms: dict[str, bool],
) -> np.ndarray:
    s, a, _, _ = y.shape
    if method == "mixed_model":
        return balanced_mixed_model_test(y, null=null, hypothesis=hypothesis, **terms)[3]
    out = np.empty((s, a - 1))
    pairs = [(k, 0) for k in range(1, a)]
    if method == "cluster_bootstrap":
        # the analysis's test: its p-value comes from the corrected two-way variance
        # in closed form, so no resamples are needed to simulate it
        return two_way_t_tests(y, np.ones(y.shape), pairs, null=null, hypothesis=hypothesis)
    # friedman: Wilcoxon signed-rank on case-level mean differences
    case_means = y.mean(axis=2)  # (s, a, c)
    alt: Literal["greater", "two-sided"] = "two-sided" if hypothesis == "two_sided" else "greater"
    for i in range(s):
        for k in range(1, a):
            diff = case_means[i, k] - case_means[i, 0]
            out[i, k - 1] = wilcoxon_signed_rank(diff, alternative=alt, shift=null).p_value
    return out


#: How a progress bar names each simulated scenario.
_SCENARIO = {"alt": "power, under the effect", "null": "type-I error, under the null"}


def power_simulation(
    *,
    n_raters: int,
    n_cases: int,
    effect: float | Sequence[float],
    sd_rater: float,
    sd_case: float,
    sd_residual: float,
    n_arms: int | None = None,
    arms: Sequence[str] | None = None,
    sd_rater_arm: float = 0.0,
    sd_case_arm: float = 0.0,
    sd_rater_case: float = 0.0,
    method: str = "mixed_model",
    hypothesis: str = "superiority",
    margin: float = 0.0,
    alpha: float = 0.05,
    multiplicity: str = "holm",
    rater_by_arm: bool | None = None,
    case_by_arm: bool | None = None,
    rater_by_case: bool | None = None,
    n_sims: int = 2000,
    n_boot: int = 500,
    seed: int = 0,
    map_chunks: ChunkMap | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> PowerResult:
    """Simulate a fully crossed reader study and estimate power and type I error.

    Parameters
    ----------
    n_raters, n_cases : int
        Planned numbers of raters and cases; every rater rates every case under
        every arm (one rating per cell).
    effect : float or sequence of float
        Difference, on the rating scale, of each non-reference arm versus the
        reference (arm 0). A float gives every non-reference arm that
        difference; a sequence gives one per non-reference arm, the first being
        the tested arm whose power is reported as ``power``.
    sd_rater, sd_case, sd_residual : float
        Standard deviations of the rater and case random intercepts and of the
        residual.
    n_arms : int, optional
        Number of arms including the reference (default 2, or from ``arms`` or
        ``effect``).
    arms : sequence of str, optional
        Arm names, reference first (only used to label the contrasts).
    sd_rater_arm, sd_case_arm, sd_rater_case : float
        SDs of the rater x arm intercepts (raters who gain more from one arm
        than others), the case x arm intercepts (cases on which one arm helps
        more than on others) and the rater x case intercepts (a rater finding
        one case harder than others do, under every arm) in the simulated data.
    method : {"mixed_model", "cluster_bootstrap", "friedman"}
        The plan's primary test, as in :func:`studyhub.stats.compare.compare_arms`.
    hypothesis : {"superiority", "non_inferiority", "two_sided"}
    margin : float
        Non-inferiority margin (> 0 with ``"non_inferiority"``, else 0).
    alpha : float
    multiplicity : {"holm", "bonferroni", "fixed_sequence", "none"}
    rater_by_arm, case_by_arm, rater_by_case : bool, optional
        Mixed model only: the random interactions of the analysis model, as in
        :func:`studyhub.stats.compare.compare_arms`; all three by default, the
        model that generalises to new raters and new cases. ``False`` analyses
        with a smaller model, to show what leaving an interaction out costs.
    n_sims : int
        Simulated studies (at least 100); the Monte Carlo standard error of a
        rate near 0.8 is about ``0.4 / sqrt(n_sims)``.
    n_boot : int
        Bootstrap resamples per simulated study (``"cluster_bootstrap"``); its
        test does not depend on them (the corrected variance is exact), so
        they are only checked.
    seed : int
        Seed of the random generators (a non-negative integer): the simulated
        studies are drawn in chunks of at most ``CHUNK_SIMS``, each from its own
        generator seeded by ``(seed, scenario, chunk)``.
    map_chunks : callable, optional
        ``map_chunks(fn, chunks) -> [fn(c) for c in chunks]``, run elsewhere:
        :func:`studyhub.cluster.client_map` runs the chunks on a Dask cluster.
        Every chunk is seeded on its own, so the result equals a run in this
        process.
    progress : callable, optional
        Called as ``progress(scenario, done, n_sims)`` as chunks of simulated
        studies finish (after all of them on a cluster); the results do not depend on it.

    Returns
    -------
    PowerResult

    Raises
    ------
    DataError
        For sizes below 2 (below 3 raters with the rater x arm term, 3 cases
        with the case x arm term), negative SDs, unknown options or effects of
        the wrong length.

    Notes
    -----
    Type I error is simulated separately with every effect at the boundary of
    the null hypothesis (0, or ``-margin`` for non-inferiority). The
    mixed-model test uses :func:`balanced_mixed_model_test`, the exact REML
    solution of the balanced design, identical to fitting the model with
    ``compare_arms`` (see there). Continuous ratings are simulated; coarse
    Likert scales lower power a little. Checked by simulation: the
    mixed-model test's type I error is 5% within Monte Carlo error with rater
    x arm, case x arm and rater x case variation, and its power matches the
    noncentral-t power ``P(T_{df}(delta) > t_{1-alpha})`` with ``delta =
    effect / sqrt(2 sd_residual^2 / (R C))`` when there are no interactions.

    References
    ----------
    .. [1] Arnold BF, Hogan DR, Colford JM, Hubbard AE (2011). Simulation methods
       to estimate design power: an overview for applied research. BMC Medical
       Research Methodology 11:94.
    .. [2] Morris TP, White IR, Crowther MJ (2019). Using simulation studies to
       evaluate statistical methods. Statistics in Medicine 38:2074-2102
       (Monte Carlo standard errors).

    Examples
    --------
    >>> design = dict(n_raters=8, n_cases=40, effect=0.5, sd_rater=0.3, sd_case=0.5,
    ...               sd_rater_arm=0.2, sd_case_arm=0.2, sd_residual=0.9, n_sims=1000, seed=0)
    >>> res = power_simulation(**design)
    >>> round(res.power, 2), round(res.type_i_error, 3)
    (0.96, 0.053)

    The same design analysed without the interactions rejects a true null far
    too often (one-sided alpha = 0.05):

    >>> no_interactions = dict(rater_by_arm=False, case_by_arm=False, rater_by_case=False)
    >>> round(power_simulation(**design, **no_interactions).type_i_error, 2)
    0.19
    """
    effects_in = np.atleast_1d(np.asarray(effect, dtype=float))
    if n_arms is None:
        n_arms = len(arms) if arms is not None else max(2, effects_in.size + 1)
    if arms is not None and len(arms) != n_arms:
        raise DataError(f"arms has {len(arms)} names but n_arms is {n_arms}; make them agree")
    for name, value in (("n_raters", n_raters), ("n_cases", n_cases), ("n_arms", n_arms)):
        if not (isinstance(value, int | np.integer) and value >= 2):
            raise DataError(f"{name} is {value!r}; the design needs an integer of at least 2")
    sd: dict[str, float] = {
        "rater": float(sd_rater),
        "case": sd_case,
        "residual": sd_residual,
        "rater_arm": sd_rater_arm,
        "case_arm": sd_case_arm,
        "rater_case": sd_rater_case,
    }
    for name, sd_value in sd.items():
        if not (math.isfinite(sd_value) and sd_value >= 0):
            raise DataError(f"sd_{name} is {sd_value!r}; pass a non-negative standard deviation")
    if sd_residual <= 0:
        raise DataError(f"sd_residual is {sd_residual!r}; pass a positive residual SD")
    if method not in POWER_METHODS:
        raise DataError(
            f"method {method!r} cannot be simulated; use one of {', '.join(POWER_METHODS)}"
        )
    if hypothesis not in HYPOTHESES:
        raise DataError(f"hypothesis {hypothesis!r} is unknown; use one of {', '.join(HYPOTHESES)}")
    if multiplicity not in MULTIPLICITY_METHODS:
        raise DataError(
            f"multiplicity {multiplicity!r} is unknown; use one of "
            f"{', '.join(MULTIPLICITY_METHODS)}"
        )
    if hypothesis == "non_inferiority" and not margin > 0:
        raise DataError(
            f"hypothesis='non_inferiority' needs a margin > 0 (got {margin!r}); pass the "
            "pre-registered margin"
        )
    if hypothesis != "non_inferiority" and margin != 0:
        raise DataError(
            f"margin={margin!r} is only used with hypothesis='non_inferiority'; drop it"
        )
    if not 0 < alpha < 0.5:
        raise DataError(f"alpha is {alpha!r}; pass a significance level between 0 and 0.5")
    if not (isinstance(seed, int | np.integer) and seed >= 0):
        raise DataError(f"seed is {seed!r}; pass a non-negative integer seed")
    if not (isinstance(n_sims, int | np.integer) and n_sims >= 100):
        raise DataError(f"n_sims is {n_sims!r}; pass at least 100 simulated studies")
    terms = random_terms(
        method, rater_by_arm=rater_by_arm, case_by_arm=case_by_arm, rater_by_case=rater_by_case
    )
    require_model_sizes(terms, n_raters=n_raters, n_cases=n_cases)
    if method == "cluster_bootstrap" and n_boot < 100:
        raise DataError(f"n_boot is {n_boot!r}; pass at least 100 resamples per study")
    if effects_in.size == 1:
        effects_in = np.full(n_arms - 1, effects_in[0])
    if effects_in.size != n_arms - 1:
        raise DataError(
            f"effect has {effects_in.size} values for {n_arms - 1} non-reference arm(s); "
            "pass one difference per non-reference arm, or a single number"
        )
    labels = list(arms) if arms is not None else [f"arm{k}" for k in range(n_arms)]
    null = -float(margin)
    scenarios = {
        "alt": np.concatenate([[0.0], effects_in]),
        "null": np.concatenate([[0.0], np.full(n_arms - 1, null)]),
    }
    cell_count = n_arms * n_raters * n_cases
    batch = max(1, min(n_sims, CHUNK_SIMS, int(4e6 // cell_count)))
    chunks = [
        _Chunk(
            seed=int(seed),
            scenario=k,
            index=start // batch,
            n_sims=min(batch, n_sims - start),
            effects=eff,
            n_raters=n_raters,
            n_cases=n_cases,
            sd=sd,
            method=method,
            null=null,
            hypothesis=hypothesis,
            n_boot=n_boot,
            terms=terms,
            multiplicity=multiplicity,
            alpha=alpha,
        )
        for k, eff in enumerate(scenarios.values())
        for start in range(0, n_sims, batch)
    ]
    names = list(scenarios)
    if map_chunks is not None:
        done = map_chunks(_run_chunk, chunks)
        if progress is not None:
            for name in names:
                progress(f"simulating ({_SCENARIO[name]})", n_sims, n_sims)
    else:
        done = []
        counted = dict.fromkeys(names, 0)
        if progress is not None:
            for name in names:
                progress(f"simulating ({_SCENARIO[name]})", 0, n_sims)
        for chunk in chunks:
            done.append(_run_chunk(chunk))
            name = names[chunk.scenario]
            counted[name] += chunk.n_sims
            if progress is not None:
                progress(f"simulating ({_SCENARIO[name]})", counted[name], n_sims)
    rejections: dict[str, np.ndarray] = {
        name: np.concatenate([r for c, r in zip(chunks, done, strict=True) if c.scenario == k])
        for k, name in enumerate(scenarios)
    }
    pw = rejections["alt"].mean(axis=0)
    t1 = rejections["null"].mean(axis=0)
    fwer = float(rejections["null"].any(axis=1).mean())

    def mcse(x: np.ndarray | float) -> np.ndarray:
        return np.sqrt(np.asarray(x) * (1 - np.asarray(x)) / n_sims)

    table = pd.DataFrame(
        {
            "contrast": [f"{labels[k]} - {labels[0]}" for k in range(1, n_arms)],
            "effect": effects_in,
            "power": pw,
            "power_mcse": mcse(pw),
            "type_i_error": t1,
            "type_i_error_mcse": mcse(t1),
        }
    )
    design = {
        "n_raters": int(n_raters),
        "n_cases": int(n_cases),
        "n_arms": int(n_arms),
        "arms": labels,
        "ratings_per_study": int(cell_count),
        "effect": [float(e) for e in effects_in],
        "sd_rater": sd_rater,
        "sd_case": sd_case,
        "sd_residual": sd_residual,
        "sd_rater_arm": sd_rater_arm,
        "sd_case_arm": sd_case_arm,
        "sd_rater_case": sd_rater_case,
        "method": method,
        "hypothesis": hypothesis,
        "margin": float(margin),
        "alpha": float(alpha),
        "multiplicity": multiplicity,
        **terms,
        "n_boot": int(n_boot) if method == "cluster_bootstrap" else None,
    }
    return PowerResult(
        power=float(pw[0]),
        power_mcse=float(mcse(float(pw[0]))),
        type_i_error=fwer,
        type_i_error_mcse=float(mcse(fwer)),
        per_contrast=table,
        design=design,
        n_sims=int(n_sims),
        seed=int(seed),
    )
