"""Everything the study report shows, gathered in one frozen :class:`ReportInput`.

``analyze`` builds it after unblinding from the analysis run (``results``, the
dict stored as ``results.json``), the tidy export (``answers``, ``cases``,
``marks``) and the optional parts a study may have (amendments, the sampling
report, calibration, MRMC curves, metric correlations, example stimuli, the
environment). :func:`check_input` refuses, before anything is drawn or written,
input the report cannot show honestly: a missing column, a rater that is not a
pseudonym, example stimuli before unblinding.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from studyhub.errors import DataError

__all__ = [
    "AmendmentRecord",
    "CalibrationData",
    "MRMCData",
    "ReportInput",
    "StudyInfo",
    "check_input",
    "roc_points",
]

#: A rater as the export names them (never the account name).
PSEUDONYM = re.compile(r"^rater-\d+$")

#: Columns of the answers frame the report reads (the contract's tidy export).
ANSWER_COLUMNS = ("rater", "case", "arm", "item", "item_type", "value", "label")


@dataclass(frozen=True)
class StudyInfo:
    """The registered study: identity, design and the hashes that lock it."""

    id: str
    title: str
    design: str
    registration_hash: str
    plan_hash: str
    registered_at: str
    protocol_id: str
    plan_id: str
    protocol_hash: str = ""


@dataclass(frozen=True)
class AmendmentRecord:
    """One amendment: its number, reason, the hashes before and after, and when."""

    number: int
    reason: str
    old_hash: str
    new_hash: str
    created_at: str


@dataclass(frozen=True)
class CalibrationData:
    """The model's calibration: ECE before and after, and the reliability diagram's bins.

    ``bins`` has one row per confidence bin: ``mean_predicted`` (mean predicted
    probability), ``observed`` (observed frequency of a correct prediction) and
    ``count``. :meth:`from_cases` computes them from the cases frame.
    """

    ece_before: float | None
    ece_after: float | None
    bins: pd.DataFrame

    @classmethod
    def from_cases(
        cls,
        cases: pd.DataFrame,
        *,
        ece_before: float | None,
        ece_after: float | None,
        n_bins: int = 10,
        probability: str = "probability",
        correct: str = "correct",
    ) -> CalibrationData:
        """Equal-width bins of the calibrated ``probability`` against ``correct``.

        Parameters
        ----------
        cases
            One row per case with the model's calibrated probability of its
            prediction and whether the prediction was correct.
        ece_before, ece_after
            Expected calibration error before and after temperature scaling.
        n_bins
            Number of equal-width bins over [0, 1].
        probability, correct
            Column names.

        Returns
        -------
        CalibrationData
            Bins without cases are left out.
        """
        missing = [c for c in (probability, correct) if c not in cases.columns]
        if missing:
            raise DataError(
                f"the cases frame has no column(s) {missing} (columns: {list(cases.columns)}); "
                "export the cases after unblinding, with probability and correct"
            )
        p = pd.to_numeric(cases[probability], errors="coerce").to_numpy(dtype=float)
        ok = cases[correct].astype(bool).to_numpy()
        keep = np.isfinite(p)
        p, ok = p[keep], ok[keep]
        idx = np.minimum((p * n_bins).astype(int), n_bins - 1)
        rows = [
            {
                "mean_predicted": float(p[idx == b].mean()),
                "observed": float(ok[idx == b].mean()),
                "count": int((idx == b).sum()),
            }
            for b in range(n_bins)
            if (idx == b).any()
        ]
        bins = pd.DataFrame(rows, columns=["mean_predicted", "observed", "count"])
        return cls(ece_before=ece_before, ece_after=ece_after, bins=bins)


@dataclass(frozen=True)
class MRMCData:
    """Reader ROC curves per arm and the Obuchowski-Rockette analysis table.

    ``roc`` has columns ``reader``, ``arm``, ``fpf``, ``tpf`` (one row per
    operating point, :func:`roc_points` computes them); ``or_table`` is shown as
    it is (e.g. the AUC differences of :func:`studyhub.stats.mrmc.mrmc`).
    """

    roc: pd.DataFrame
    or_table: pd.DataFrame


@dataclass(frozen=True)
class ReportInput:
    """Everything the report shows; optional parts left ``None`` render as not applicable.

    Parameters
    ----------
    study
        The registered study.
    results
        The analysis run as stored in ``results.json``: ``criteria`` (with
        ``results``, ``success``, ``success_rule``), ``deviations``, ``flow``,
        ``free_text``, and optionally ``software``, ``unblinded_at``, ``seed``.
    answers
        The tidy answers (contract columns; at least ``rater, case, arm, item,
        item_type, value, label``).
    cases, marks
        The cases and cue-marks frames of the export (after unblinding).
    amendments
        The amendments, in order.
    sampling_report
        The sampling report (the dict ``studyhub sample`` stores, or text).
    calibration, mrmc
        Calibration and MRMC data when the study has them.
    metric_correlation
        Human-versus-metric data: one row per stimulus with ``arm``, ``metric``
        (its name), ``metric_value`` and ``mean_rating``.
    montage
        Example stimuli after unblinding: ``(arm, png bytes)`` pairs.
    environment
        Package versions, platform and device.
    """

    study: StudyInfo
    results: Mapping[str, Any]
    answers: pd.DataFrame
    cases: pd.DataFrame | None = None
    marks: pd.DataFrame | None = None
    amendments: Sequence[AmendmentRecord] = ()
    sampling_report: Mapping[str, Any] | str | None = None
    calibration: CalibrationData | None = None
    mrmc: MRMCData | None = None
    metric_correlation: pd.DataFrame | None = None
    montage: Sequence[tuple[str, bytes]] = ()
    environment: Mapping[str, Any] | None = field(default=None)

    @property
    def endpoint_results(self) -> list[dict[str, Any]]:
        """The EndpointResult dicts of the analysis, in the plan's order."""
        return list(self.results.get("criteria", {}).get("results", []))


def roc_points(
    data: pd.DataFrame, *, reader: str, arm: str, truth: str, rating: str
) -> pd.DataFrame:
    """Empirical ROC operating points of every reader under every arm.

    Parameters
    ----------
    data
        One row per reading; ``truth`` is 0/1 (1 = condition present) and a
        higher ``rating`` means more confidence that it is present.
    reader, arm, truth, rating
        Column names.

    Returns
    -------
    pandas.DataFrame
        Columns ``reader``, ``arm``, ``fpf``, ``tpf``; each curve runs from
        (0, 0) to (1, 1), one point per distinct rating threshold.
    """
    rows: list[dict[str, Any]] = []
    for (r, a), grp in data.groupby([reader, arm], sort=True):
        y = grp[truth].astype(int).to_numpy()
        s = pd.to_numeric(grp[rating], errors="coerce").to_numpy(dtype=float)
        n_pos, n_neg = int((y == 1).sum()), int((y == 0).sum())
        if n_pos == 0 or n_neg == 0:
            raise DataError(
                f"reader {r!r} under arm {a!r} read {n_pos} positive and {n_neg} negative "
                "cases; an ROC curve needs both (check the truth column)"
            )
        rows.append({"reader": r, "arm": a, "fpf": 0.0, "tpf": 0.0})
        for t in np.unique(s)[::-1]:
            rows.append(
                {
                    "reader": r,
                    "arm": a,
                    "fpf": float(((s >= t) & (y == 0)).sum() / n_neg),
                    "tpf": float(((s >= t) & (y == 1)).sum() / n_pos),
                }
            )
    return pd.DataFrame(rows, columns=["reader", "arm", "fpf", "tpf"])


def _require(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"the {what} frame has no column(s) {missing} (columns: {list(frame.columns)}); "
            "pass the frame of the tidy export (studyhub export)"
        )


def _pseudonyms(values: Any, where: str) -> None:
    for v in pd.unique(pd.Series(list(values), dtype=object).dropna()):
        if not PSEUDONYM.match(str(v)):
            raise DataError(
                f"rater {v!r} in {where} is not a pseudonym; the report shows raters only as "
                "rater-<id> (export the data with studyhub export, which never writes account "
                "names)"
            )


def check_input(inp: ReportInput) -> None:
    """Refuse input the report cannot show: raises :class:`DataError` naming the problem.

    Checks the contract columns, that every rater anywhere in the input is a
    pseudonym ``rater-<id>``, that the analysis results hold criteria, and that
    example stimuli come only after unblinding.
    """
    criteria = inp.results.get("criteria")
    if not isinstance(criteria, Mapping) or "results" not in criteria:
        raise DataError(
            f"the analysis results have no criteria table (keys: {sorted(inp.results)}); "
            "pass the results dict of the analysis run (results.json)"
        )
    _require(inp.answers, ANSWER_COLUMNS, "answers")
    _pseudonyms(inp.answers["rater"], "the answers")
    if inp.marks is not None and not inp.marks.empty:
        _require(inp.marks, ("rater", "arm", "tag"), "marks")
        _pseudonyms(inp.marks["rater"], "the cue marks")
    deviations = inp.results.get("deviations") or []
    _pseudonyms((d.get("rater") for d in deviations), "the deviations")
    if inp.mrmc is not None:
        _require(inp.mrmc.roc, ("reader", "arm", "fpf", "tpf"), "MRMC ROC")
        _pseudonyms(inp.mrmc.roc["reader"], "the MRMC ROC points")
    if inp.metric_correlation is not None:
        _require(
            inp.metric_correlation, ("arm", "metric", "metric_value", "mean_rating"), "correlation"
        )
    if inp.calibration is not None:
        _require(inp.calibration.bins, ("mean_predicted", "observed", "count"), "calibration bins")
    if inp.montage and not inp.results.get("unblinded_at"):
        raise DataError(
            "example stimuli were given but the results record no unblinding (unblinded_at is "
            "empty); the montage shows arms and may be drawn only after studyhub analyze unblinds"
        )
    for arm, png in inp.montage:
        if not bytes(png[:8]) == b"\x89PNG\r\n\x1a\n":
            raise DataError(
                f"the example stimulus of arm {arm!r} is not a PNG image (starts with "
                f"{bytes(png[:8])!r}); pass the rendered stimulus PNG bytes"
            )
