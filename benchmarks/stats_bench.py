"""Time a full analysis plan on a simulated 20 raters x 300 cases x 4 arms study.

Run ``python benchmarks/stats_bench.py``. Prints each part's wall time, the
total, and its ratio to the 60 s goal. The parts are the plan's heavy steps:
Krippendorff's alpha with 2000 bootstrap resamples (inter-rater agreement of
the 1200 stimuli), the primary mixed model (the default: random rater, case,
rater x arm, case x arm and rater x case intercepts), the two-intercept model
(a sensitivity analysis conditional on these raters and cases), the
Friedman/Wilcoxon sensitivity analysis and the two-way cluster bootstrap with
2000 resamples.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from studyhub.stats.bootstrap import cluster_bootstrap
from studyhub.stats.compare import compare_arms

try:
    from studyhub.stats.agreement import krippendorff_alpha
except ImportError:  # pragma: no cover - agreement is written in parallel
    krippendorff_alpha = None  # type: ignore[assignment]

GOAL_S = 60.0
T = TypeVar("T")


def simulate(
    n_raters: int = 20, n_cases: int = 300, n_arms: int = 4, seed: int = 0
) -> pd.DataFrame:
    """A fully crossed study on a 1-5 Likert item with rater, case, arm and interaction effects."""
    rng = np.random.default_rng(seed)
    a, r, c = np.meshgrid(np.arange(n_arms), np.arange(n_raters), np.arange(n_cases), indexing="ij")
    latent = (
        3.0
        + 0.15 * a
        + rng.normal(0, 0.4, n_raters)[r]
        + rng.normal(0, 0.7, n_cases)[c]
        + rng.normal(0, 0.2, (n_arms, n_raters))[a, r]
        + rng.normal(0, 0.25, (n_arms, n_cases))[a, c]
        + rng.normal(0, 0.3, (n_raters, n_cases))[r, c]
        + rng.normal(0, 0.8, a.shape)
    )
    return pd.DataFrame(
        {
            "arm": np.array(["control", "gradcam", "ig", "shap", "lime"])[a.ravel()],
            "rater": [f"r{i:02d}" for i in r.ravel()],
            "case": [f"c{i:03d}" for i in c.ravel()],
            "rating": np.clip(np.round(latent), 1, 5).ravel(),
        }
    )


def _timed(label: str, fn: Callable[[], T]) -> tuple[float, T]:
    start = time.perf_counter()
    out = fn()
    elapsed = time.perf_counter() - start
    print(f"{label:<56s} {elapsed:8.2f} s", flush=True)
    return elapsed, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n-boot", type=int, default=2000)
    args = parser.parse_args()
    data = simulate()
    print(f"simulated {len(data)} ratings: 20 raters x 300 cases x 4 arms (1-5 Likert)")
    cols: dict[str, Any] = dict(
        arm="arm", rating="rating", rater="rater", case="case", reference="control"
    )
    data["stimulus"] = data["case"] + "/" + data["arm"]
    parts: list[float] = []
    summary: list[str] = []

    if krippendorff_alpha is not None:
        t, alpha = _timed(
            f"Krippendorff alpha, ordinal, {args.n_boot} resamples (studyhub)",
            lambda: krippendorff_alpha(
                data,
                units="stimulus",
                raters="rater",
                ratings="rating",
                level="ordinal",
                n_boot=args.n_boot,
                seed=0,
            ),
        )
        summary.append(f"alpha = {alpha.estimate:.3f} [{alpha.ci_low:.3f}, {alpha.ci_high:.3f}]")
    else:
        import krippendorff

        wide = data.pivot(index="rater", columns="stimulus", values="rating").to_numpy()
        t, value = _timed(
            "Krippendorff alpha, ordinal, point only (krippendorff pkg)",
            lambda: float(
                krippendorff.alpha(reliability_data=wide, level_of_measurement="ordinal")
            ),
        )
        summary.append(f"alpha = {value:.3f} (krippendorff package, no bootstrap)")
    parts.append(t)
    t, mixed = _timed(
        "mixed model, default (5 random terms), 3 contrasts", lambda: compare_arms(data, **cols)
    )
    parts.append(t)
    no_interactions = dict(rater_by_arm=False, case_by_arm=False, rater_by_case=False)
    t, narrow = _timed(
        "mixed model, rater + case only (sensitivity), 3 contrasts",
        lambda: compare_arms(data, **cols, **no_interactions),
    )
    parts.append(t)
    t, friedman = _timed(
        "Friedman + Wilcoxon signed-rank, 3 contrasts",
        lambda: compare_arms(data, **cols, method="friedman"),
    )
    parts.append(t)
    if friedman.omnibus is not None:
        omnibus = friedman.omnibus
        summary.append(f"Friedman chi2 = {omnibus.statistic:.1f}, p = {omnibus.p_value:.2g}")
    t, boot = _timed(
        f"two-way cluster bootstrap, {args.n_boot} resamples",
        lambda: cluster_bootstrap(data, **cols, n_boot=args.n_boot, seed=0),
    )
    parts.append(t)
    total = sum(parts)
    print(f"{'total':<56s} {total:8.2f} s")
    print(f"ratio to the {GOAL_S:.0f} s goal: {total / GOAL_S:.3f}")
    print()
    print("\n".join(summary))
    print(f"mixed model, default ({mixed.details['convergence']}):")
    print(
        mixed.contrasts[["contrast", "estimate", "se", "df", "p_adjusted"]].to_string(index=False)
    )
    print("variance components:", {k: round(v, 4) for k, v in mixed.variance_components.items()})
    print("mixed model, rater + case only (conditional on these raters and cases):")
    print(
        narrow.contrasts[["contrast", "estimate", "se", "df", "p_adjusted"]].to_string(index=False)
    )
    print("cluster bootstrap:")
    print(
        boot.contrasts[["contrast", "estimate", "se", "ci_low", "ci_high"]].to_string(index=False)
    )


if __name__ == "__main__":
    main()
