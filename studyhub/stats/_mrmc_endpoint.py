"""MRMC endpoints of a plan: reader AUCs from diagnosis answers, Obuchowski-Rockette.

A ``reader_diagnosis`` study asks each reader for a class (the answer's
``label``) and a confidence 0..100 in it (its ``value``). The ROC analysis
needs a binary truth and one rating per reading on a positivity scale:

- the binary truth is 1 when the case's class is positive: the class named by
  the endpoint's ``positive`` option, or, without it, **every class other than
  the first of the protocol's data.labels** (the first label is the normal /
  defect-free class, as in the demo's ``none``);
- the rating is the reader's confidence that the case is positive: the stated
  confidence when the chosen class is positive, else ``100 - confidence``.

This folds a decision and its confidence into one "probability of abnormality"
scale, the rating scale of ROC reader studies (Metz 1978; Zhou, Obuchowski &
McClish 2011, ch. 4): a confident negative call ranks lowest, a confident
positive call highest. With more than two classes the confidence in the chosen
positive class is a lower bound of the confidence that some positive class is
present; readers who state confidences below 50 make the scale non-monotone in
their belief, which the report's rating distributions show.

Data whose truth is already 0/1 (a study not collected by studyhub, e.g. the
Van Dyke data) are analysed as given: the value is the rating.

References
----------
.. [1] Metz CE (1978). Basic principles of ROC analysis. Seminars in Nuclear
   Medicine 8(4):283-298.
.. [2] Zhou XH, Obuchowski NA, McClish DK (2011). Statistical Methods in
   Diagnostic Medicine, 2nd ed. Wiley, chapter 4.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd
from scipy import stats as sps

from studyhub.errors import DataError
from studyhub.protocol.plan import AnalysisPlan, Endpoint
from studyhub.stats.criteria import _Estimate

__all__ = ["positivity_ratings", "reader_auc_endpoint"]


def _binary(truth: pd.Series) -> pd.Series | None:
    """The truth as 0/1 integers when it already is binary, else None."""
    values = pd.to_numeric(truth, errors="coerce")
    if values.notna().all() and values.isin([0, 1]).all():
        return values.astype(int)
    return None


def positivity_ratings(
    sub: pd.DataFrame,
    *,
    label: str,
    value: str,
    truth: str,
    positive: Sequence[str],
) -> pd.DataFrame:
    """``sub`` with ``_truth`` (0/1) and ``_rating`` (confidence the case is positive, 0..100).

    ``positive`` lists the positive classes; ``label`` holds the chosen class,
    ``value`` the confidence in it, ``truth`` the case's class.
    """
    pos = set(map(str, positive))
    conf = pd.to_numeric(sub[value], errors="coerce")
    bad = sub[value][conf.isna() | (conf < 0) | (conf > 100)]
    if len(bad):
        raise DataError(
            f"diagnosis confidence {bad.iloc[0]!r} (row {bad.index[0]!r}) is not a number in "
            "0..100; code each diagnosis' confidence as 0..100"
        )
    chosen = sub[label].astype(str).str.strip().isin(pos)
    return sub.assign(
        _truth=sub[truth].astype(str).str.strip().isin(pos).astype(int),
        _rating=conf.where(chosen, 100.0 - conf),
    )


def reader_auc_endpoint(
    ep: Endpoint,
    sub: pd.DataFrame,
    cols: dict[str, str],
    plan: AnalysisPlan,
    *,
    truth: str | None,
    label: str | None,
    classes: Sequence[str] | None,
    opts: dict[str, Any],
    level: float,
) -> _Estimate:
    """The endpoint's AUC difference ``arm - versus`` (Obuchowski-Rockette, random readers
    and cases), its one-sided lower bound at ``level`` and one-sided p-value."""
    from studyhub.stats.mrmc import mrmc

    if truth is None:
        raise DataError("mrmc endpoints need the case truth: pass truth='column'")
    if ep.comparison is None:  # guarded by the plan schema
        raise DataError(f"endpoint {ep.id!r} has no comparison")
    positive_opt = opts.pop("positive", None)
    details: dict[str, Any] = {
        "analysis": "Obuchowski-Rockette, random readers and cases (Hillis ddf)"
    }
    binary = _binary(sub[truth])
    if binary is not None:
        sub = sub.assign(_truth=binary, _rating=sub[cols["value"]])
    else:
        if label is None or label not in sub.columns:
            raise DataError(
                f"endpoint {ep.id!r}: the truth {truth!r} names classes, so the readers' "
                "chosen classes are needed; pass label='COLUMN' (the export's label column)"
            )
        if positive_opt is not None:
            positive = [str(positive_opt)]
        elif classes is not None and len(classes) >= 2:
            positive = [str(c) for c in list(classes)[1:]]
        else:
            raise DataError(
                f"endpoint {ep.id!r}: the truth names classes but neither the endpoint's "
                "positive option nor the protocol's class list is given; pass "
                "classes=protocol.data.labels or set options: {positive: CLASS}"
            )
        sub = positivity_ratings(
            sub, label=label, value=cols["value"], truth=truth, positive=positive
        )
        details.update(
            {
                "positive": positive,
                "rating": "confidence that the case is positive: the confidence when the "
                "chosen class is positive, else 100 - confidence",
            }
        )
    res = mrmc(
        sub,
        reader=cols["rater"],
        modality=cols["arm"],
        case=cols["case"],
        truth="_truth",
        rating="_rating",
        alpha=plan.alpha,
    )
    diffs = res.rrrc.differences
    a, b = ep.comparison.arm, ep.comparison.versus
    sign = 1.0
    hit = diffs[(diffs["modality_a"].astype(str) == a) & (diffs["modality_b"].astype(str) == b)]
    if hit.empty:
        hit = diffs[(diffs["modality_a"].astype(str) == b) & (diffs["modality_b"].astype(str) == a)]
        sign = -1.0
    row = hit.iloc[0]
    est, se, df = sign * float(row["estimate"]), float(row["stderr"]), float(row["df"])
    shift = ep.hypothesis.margin or 0.0
    q = sps.t.ppf(level, df)  # one-sided lower bound
    details["ddf"] = df
    return _Estimate(
        est,
        est - q * se,
        math.inf,
        float(sps.t.sf((est + shift) / se, df)),
        res.n_readers,
        res.n_cases,
        details,
    )
