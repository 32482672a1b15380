"""Agreement endpoints of a plan: the statistic over the stimuli, with case-clustered intervals.

:func:`studyhub.stats.criteria.evaluate_criteria` hands every agreement
endpoint (``krippendorff_alpha``, ``icc``, ``cohen_kappa``, ``fleiss_kappa``,
``intra_rater``) to :func:`agreement_endpoint`. The rated unit is a stimulus
(one case shown under one arm); the statistic is pooled over the endpoint's
arms, as the plan defines it. The arms of one case share the case, so every
interval treats cases as the independent units: a jackknife that leaves out
one case at a time with all its arms and all its raters' ratings.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from studyhub.errors import DataError
from studyhub.protocol.plan import AnalysisPlan, Endpoint
from studyhub.stats.criteria import _Estimate

__all__ = ["agreement_endpoint", "nominal_label"]


def nominal_label(ep: Endpoint, label: str | None, data: pd.DataFrame) -> str | None:
    """The answer-text column a nominal agreement endpoint rates on, or None for ``value``.

    Fleiss' kappa, unweighted Cohen's kappa, Krippendorff's alpha at level
    nominal and unweighted intra-rater kappa (without a ``categories`` scale)
    treat answers as unordered categories, so they read the answer's text
    (``label``): a single choice's text, a diagnosis' class (its ``value`` is
    the confidence), "yes" / "no", a Likert point. For Likert, yes/no and
    single-choice items text and code correspond one to one, so the statistic
    is the same as on ``value``. Ordered statistics (weighted kappa, ICC,
    Krippendorff's ordinal / interval / ratio alpha) read ``value``.
    """
    if label is None or label not in data.columns:
        return None
    opts = ep.options
    nominal = (
        ep.statistic == "fleiss_kappa"
        or (ep.statistic == "cohen_kappa" and opts.get("weights") is None)
        or (ep.statistic == "krippendorff_alpha" and opts.get("level") == "nominal")
        or (
            ep.statistic == "intra_rater"
            and opts.get("method", "kappa") == "kappa"
            and "weights" in opts
            and opts["weights"] is None
            and opts.get("categories") is None
        )
    )
    return label if nominal else None


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

    The arms of one case share the case, so every interval treats **cases** as
    the independent units: a delete-one-case jackknife, each case left out with
    all its arms and all its raters' ratings (``clusters=`` of the agreement
    functions, :mod:`studyhub.stats.agreement`). It draws nothing at random, so
    a re-run gives the same interval; an endpoint's ``n_boot`` and the
    ``seed`` are not used (``details`` says so). The intervals condition on
    the raters who read: they generalise to new cases read by these raters.
    """
    from studyhub.stats import agreement

    del seed  # the case jackknife draws nothing at random
    case = cols["case"]
    sub = sub.assign(_unit=sub[case].astype(str) + "|" + sub[cols["arm"]].astype(str))
    n_raters = int(sub[cols["rater"]].nunique())
    n_cases = int(sub[case].nunique())
    conf = 2 * plan.confidence - 1  # equal-tailed: its lower limit is the one-sided bound
    unused = opts.pop("n_boot", None)
    details: dict[str, Any] = {
        "interval": "jackknife over cases (each left out with all its arms and raters), "
        "Fisher z scale, t with cases - 1 df",
        "n_cases": n_cases,
    }
    if unused is not None:
        details["n_boot"] = f"{unused} (not used: the jackknife over cases draws no resamples)"
    if ep.statistic == "intra_rater":
        if repeat is None:
            raise DataError("intra_rater endpoints need the repeat-reading column: pass repeat=")
        intra = agreement.intra_rater_agreement(
            sub,
            items="_unit",
            raters=cols["rater"],
            ratings=cols["value"],
            repeat=repeat,
            confidence=conf,
            clusters=case,
            **opts,
        )
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
            confidence=conf,
            clusters=case,
        )
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
        )
        form = res.form(str(opts.pop("form", "ICC2")))
        details["form"] = form.form
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
        )
        return _Estimate(
            kap.estimate, kap.ci_low, kap.ci_high, kap.p_value, n_raters, n_cases, details
        )
    if ep.statistic == "fleiss_kappa":
        fleiss = agreement.fleiss_kappa(
            sub,
            subjects="_unit",
            raters=cols["rater"],
            ratings=cols["value"],
            confidence=conf,
            clusters=case,
        )
        return _Estimate(
            fleiss.estimate, fleiss.ci_low, fleiss.ci_high, None, n_raters, n_cases, details
        )
    raise DataError(f"statistic {ep.statistic!r} is not an agreement statistic")
