"""Accuracy endpoints: the share of answers naming the right class, clustered by rater and case.

A single_choice or diagnosis answer names a class; the endpoint compares it with
the case's truth (``against: truth``, the default) or with the model's predicted
class (``against: prediction``: how often raters recognise what the model
decided). The result is the pooled proportion correct over the endpoint's arms,
or with ``comparison`` the difference between two arms, with the rater and case
clustered interval of :mod:`studyhub.stats._proportions`.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from studyhub.errors import DataError
from studyhub.protocol.plan import Endpoint
from studyhub.stats._proportions import proportion_endpoint
from studyhub.stats.criteria import _Estimate

__all__ = ["accuracy_endpoint", "correct_answers"]


def correct_answers(
    answers: pd.Series, reference: pd.Series, *, choice_labels: dict[str, str] | None = None
) -> pd.Series:
    """1 where an answer names the reference class, else 0 (a missing answer counts as wrong).

    ``choice_labels`` maps choice texts to the classes they mean; other answers
    are compared as written (surrounding spaces ignored).
    """
    mapping = choice_labels or {}
    named = answers.map(lambda a: mapping.get(str(a).strip(), str(a).strip()))
    hit = answers.notna() & (named == reference.astype(str).str.strip())
    return hit.astype(float)


def accuracy_endpoint(
    ep: Endpoint,
    sub: pd.DataFrame,
    cols: dict[str, str],
    *,
    label: str | None,
    truth: str | None,
    prediction: str | None,
    opts: dict[str, Any],
    level: float,
) -> _Estimate:
    """Proportion correct of the endpoint's item (single_choice or diagnosis answers).

    Parameters
    ----------
    ep
        The endpoint (statistic ``accuracy``).
    sub
        The item's answers, restricted to the endpoint's arms.
    cols
        Column names of rater, case, arm (as in evaluate_criteria).
    label
        Column of the answer as text (the choice, or the diagnosis class).
    truth, prediction
        Columns of the case's class and of the model's predicted class.
    opts
        The endpoint's options: ``against`` (truth or prediction) and
        ``choice_labels`` (choice text -> class).
    level
        Coverage of the one-sided lower bound.

    Returns
    -------
    _Estimate
        The proportion correct (or the arm difference), its lower bound and the
        one-sided p-value of the hypothesis.

    Notes
    -----
    Raters and cases are both random: the variance is the moment-corrected
    two-way cluster variance of the pooled proportion (Cameron, Gelbach &
    Miller 2011; McCullagh 2000), not a binomial one, which would treat every
    answer as independent and cover far less than its level. Simulated
    coverage of the one-sided 95 % bound under crossed random rater and case
    effects on the logit scale is checked in ``tests/stats/test_accuracy.py``,
    against the accuracy of the rater and case populations.

    References
    ----------
    .. [1] Cameron AC, Gelbach JB, Miller DL (2011). Robust inference with
       multiway clustering. Journal of Business & Economic Statistics
       29(2):238-249.
    .. [2] McCullagh P (2000). Resampling and exchangeable arrays. Bernoulli
       6(2):285-301.
    """
    against = str(opts.pop("against", "truth"))
    mapping = {str(k): str(v) for k, v in dict(opts.pop("choice_labels", {})).items()}
    if label is None or label not in sub.columns:
        raise DataError(
            f"endpoint {ep.id!r} (accuracy) needs the answers as text; pass label='COLUMN' "
            "(the export's label column)"
        )
    ref = truth if against == "truth" else prediction
    role = "truth" if against == "truth" else "prediction"
    if ref is None or ref not in sub.columns:
        raise DataError(
            f"endpoint {ep.id!r} compares answers with the {against}; pass {role}='COLUMN' "
            f"naming the case's {'class' if against == 'truth' else 'predicted class'}"
        )
    missing = sub[ref].isna()
    if missing.any():
        cases = sorted(map(str, sub.loc[missing, cols["case"]].unique()))
        raise DataError(
            f"{int(missing.sum())} answer(s) of endpoint {ep.id!r} are on cases without a "
            f"{against} ({cases[:5]}); merge the {against} of every rated case"
        )
    rows = pd.DataFrame(
        {
            "arm": sub[cols["arm"]],
            "rater": sub[cols["rater"]],
            "case": sub[cols["case"]],
            "hit": correct_answers(sub[label], sub[ref], choice_labels=mapping),
        }
    )
    details = {
        "method": "accuracy",
        "against": against,
        "n_answers": len(rows),
        "n_unanswered": int(sub[label].isna().sum()),
    }
    if mapping:
        details["choice_labels"] = mapping
    return proportion_endpoint(rows, ep, level, what="correct answers", details=details)
