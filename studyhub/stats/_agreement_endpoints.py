"""Agreement endpoints of a plan: the statistic over the stimuli, with case-clustered intervals.

:func:`studyhub.stats.criteria.evaluate_criteria` hands every agreement
endpoint (``krippendorff_alpha``, ``icc``, ``cohen_kappa``, ``fleiss_kappa``,
``intra_rater``) to :func:`agreement_endpoint`. The rated unit is a stimulus
(one case shown under one arm); the statistic is pooled over the endpoint's
arms, as the plan defines it. The arms of one case share the case, so every
interval resamples cases, each with all its arms and all its raters' ratings.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from studyhub.errors import DataError
from studyhub.protocol.plan import AnalysisPlan, Endpoint
from studyhub.stats.criteria import _Estimate

__all__ = ["agreement_endpoint"]


def agreement_endpoint(
    ep: Endpoint,
    sub: pd.DataFrame,
    cols: dict[str, str],
    plan: AnalysisPlan,
    repeat: str | None,
    opts: dict[str, Any],
    seed: int,
) -> _Estimate:
    """Agreement over the stimuli (case x arm units) of the endpoint's arms, pooled.

    The arms of one case share the case, so every interval resamples **cases**,
    each with all its arms and all its raters' ratings (``clusters=`` of the
    agreement functions); the seed is the endpoint's or the protocol's, so a
    re-run gives the same interval. The intervals condition on the raters who
    read (they generalise to new cases read by these raters).
    """
    from studyhub.stats import agreement

    case = cols["case"]
    sub = sub.assign(_unit=sub[case].astype(str) + "|" + sub[cols["arm"]].astype(str))
    n_raters = int(sub[cols["rater"]].nunique())
    n_cases = int(sub[case].nunique())
    conf = plan.confidence
    n_boot = int(opts.pop("n_boot", 1000 if ep.statistic == "fleiss_kappa" else 2000))
    details = {"interval": "bootstrap over cases (all their arms and raters)", "seed": seed}
    if ep.statistic == "intra_rater":
        if repeat is None:
            raise DataError("intra_rater endpoints need the repeat-reading column: pass repeat=")
        intra = agreement.intra_rater_agreement(
            sub,
            items="_unit",
            raters=cols["rater"],
            ratings=cols["value"],
            repeat=repeat,
            n_boot=n_boot,
            seed=seed,
            confidence=conf,
            clusters=case,
            **opts,
        )
        details.update(n_boot=n_boot, n_clusters=intra.n_clusters)
        return _Estimate(
            intra.estimate, intra.ci_low, intra.ci_high, None, n_raters, n_cases, details
        )
    if repeat is not None and repeat in sub.columns:
        sub = sub[~sub[repeat].astype(bool)]
    if ep.statistic == "krippendorff_alpha":
        alpha = agreement.krippendorff_alpha(
            sub,
            units="_unit",
            raters=cols["rater"],
            ratings=cols["value"],
            level=opts.pop("level", "ordinal"),
            n_boot=n_boot,
            seed=seed,
            confidence=conf,
            clusters=case,
        )
        details.update(n_boot=n_boot, n_clusters=alpha.n_clusters)
        return _Estimate(
            alpha.estimate, alpha.ci_low, alpha.ci_high, None, n_raters, n_cases, details
        )
    if ep.statistic == "icc":
        res = agreement.icc(
            sub,
            targets="_unit",
            raters=cols["rater"],
            ratings=cols["value"],
            confidence=conf,
            clusters=case,
            n_boot=n_boot,
            seed=seed,
        )
        form = res.form(str(opts.pop("form", "ICC2")))
        details.update(n_boot=n_boot, n_clusters=res.n_clusters, form=form.form)
        return _Estimate(
            form.estimate, form.ci_low, form.ci_high, form.p_value, n_raters, n_cases, details
        )
    if ep.statistic == "cohen_kappa":
        kap = agreement.cohen_kappa(
            sub,
            subjects="_unit",
            raters=cols["rater"],
            ratings=cols["value"],
            weights=opts.pop("weights", None),
            confidence=conf,
            clusters=case,
            n_boot=n_boot,
            seed=seed,
        )
        details.update(n_boot=n_boot, n_clusters=kap.n_clusters)
        return _Estimate(
            kap.estimate, kap.ci_low, kap.ci_high, kap.p_value, n_raters, n_cases, details
        )
    if ep.statistic == "fleiss_kappa":
        return _fleiss(sub, cols, conf, n_boot, seed, n_raters, n_cases)
    raise DataError(f"statistic {ep.statistic!r} is not an agreement statistic")


def _fleiss(
    sub: pd.DataFrame,
    cols: dict[str, str],
    conf: float,
    n_boot: int,
    seed: int,
    n_raters: int,
    n_cases: int,
) -> _Estimate:
    """Fleiss' kappa with a percentile bootstrap over cases (its SE is only under H0)."""
    from studyhub.stats.agreement import fleiss_kappa

    res = fleiss_kappa(
        sub,
        subjects="_unit",
        raters=cols["rater"],
        ratings=cols["value"],
        n_boot=n_boot,
        seed=seed,
        confidence=conf,
        clusters=cols["case"],
    )
    details = {
        "interval": "bootstrap over cases (all their arms and raters)",
        "seed": seed,
        "n_boot": n_boot,
        "n_clusters": res.n_clusters,
    }
    return _Estimate(res.estimate, res.ci_low, res.ci_high, None, n_raters, n_cases, details)
