"""The tidy analysis data set: one row per effective answer, read from the store.

:func:`tidy_data` turns the store's responses into the long tables every
analysis and the evidence package use:

``answers``
    One row per answer to one instrument item. Superseded answers are resolved
    to the latest correction (``corrected`` marks an answer that replaced an
    earlier one), training items are left out, catch and repeat items are kept
    and flagged (``kind``, ``catch``, ``catch_passed``, ``repeat``).
``cases`` (after unblinding only)
    Each enrolled case's truth, the model's prediction and calibrated
    probability, its split and stratification values.
``marks``
    One row per cue mark, with (after unblinding, when the case has a mask) the
    labelled region under it.

Raters and cases appear under pseudonyms only (``rater-<id>``, ``case-<id>``):
never an account name, a file name or a case key. Before unblinding the
``arm`` column holds the stimulus' opaque code, so an export made for a
monitor reveals no arm, method, truth or prediction.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from studyhub.protocol.schema import Item, Protocol
from studyhub.rating.progress import catch_failed
from studyhub.store.models import (
    Arm,
    Assignment,
    Case,
    Prediction,
    Rater,
    ReadingSession,
    Response,
    Stimulus,
    Study,
)

__all__ = [
    "ANSWER_COLUMNS",
    "TidyData",
    "case_pseudonym",
    "data_dictionary",
    "data_digest",
    "rater_pseudonym",
    "tidy_data",
    "write_tables",
]

#: Columns of ``answers``, in order, with their meaning (the data dictionary).
ANSWER_COLUMNS: Final[dict[str, tuple[str, str]]] = {
    "study": ("string", "study id"),
    "rater": ("string", "rater pseudonym rater-<n> (never the account name)"),
    "session": ("integer", "reading session number of the rater (1, 2, ...)"),
    "case": ("string", "case pseudonym case-<n> (never the file name or case key)"),
    "stimulus": ("string", "opaque code of the stimulus (a case shown under one arm)"),
    "arm": (
        "string",
        "protocol arm id after unblinding; before unblinding the stimulus' opaque code",
    ),
    "item": ("string", "instrument item id (the plan's measure)"),
    "item_type": ("string", "likert, yes_no, single_choice, diagnosis or free_text"),
    "value": (
        "number",
        "numeric coding: likert the scale value; yes_no 1 (yes) or 0 (no); single_choice the "
        "1-based position of the choice in the item's choices; diagnosis the confidence "
        "0-100; free_text empty",
    ),
    "label": (
        "string",
        "the answer as given: the likert value, yes/no, the choice's text, the diagnosis "
        "class, or the free text",
    ),
    "kind": ("string", "read (the design's readings), catch (attention check) or repeat"),
    "repeat": ("boolean", "a repeat reading of a stimulus the rater read before"),
    "catch": ("boolean", "an attention-check item (never analysed as data)"),
    "catch_passed": ("boolean", "catch items: answered as the instruction asked; else empty"),
    "corrected": ("boolean", "this answer superseded an earlier answer (a correction)"),
    "time_on_task_ms": ("integer", "milliseconds from serving to submitting, as reported"),
    "served_at": ("datetime", "UTC time the item was first served to the rater"),
    "answered_at": ("datetime", "UTC time of the effective answer"),
}

#: Columns of the readings assigned but never answered.
MISSING_COLUMNS: Final = ("study", "rater", "session", "case", "stimulus", "arm")

CASE_COLUMNS: Final[dict[str, tuple[str, str]]] = {
    "case": ("string", "case pseudonym case-<n>"),
    "image_sha256": ("string", "SHA-256 of the case's image file"),
    "truth": ("string", "the case's reference label"),
    "predicted": ("string", "the model's predicted label"),
    "probability": ("number", "the model's calibrated probability of its predicted label"),
    "correct": ("boolean", "the prediction equals the truth"),
    "split": ("string", "the data split the case came from"),
}

MARK_COLUMNS: Final[dict[str, tuple[str, str]]] = {
    "rater": ("string", "rater pseudonym"),
    "case": ("string", "case pseudonym"),
    "stimulus": ("string", "opaque code of the stimulus marked"),
    "arm": ("string", "protocol arm id after unblinding; before, the opaque code"),
    "kind": ("string", "the item the mark was placed on: read, catch or repeat"),
    "x": ("number", "horizontal position, fraction of the image width from the left"),
    "y": ("number", "vertical position, fraction of the image height from the top"),
    "tag": ("string", "correct or misleading cue"),
    "region": (
        "string",
        "after unblinding: the labelled mask region under the mark (data.mask_labels), "
        "'background' outside every region; empty when the case has no mask",
    ),
}


def rater_pseudonym(rater_id: int, role: str = "rater") -> str:
    """The pseudonym of an account in exports and reports: the audit log's."""
    from studyhub.rating.pseudonyms import pseudonym

    return pseudonym(role, rater_id)


def case_pseudonym(case_id: int) -> str:
    """The pseudonym of a case in exports and reports."""
    return f"case-{case_id}"


@dataclass(frozen=True)
class TidyData:
    """The analysis data set of one study (see the module docstring)."""

    study_id: str
    unblinded: bool
    answers: pd.DataFrame
    marks: pd.DataFrame
    cases: pd.DataFrame | None = None
    #: Assignments of kind read with no answer: (rater, case, stimulus, arm) rows.
    missing: pd.DataFrame = field(default_factory=pd.DataFrame)
    notes: list[str] = field(default_factory=list)

    def tables(self) -> dict[str, pd.DataFrame]:
        """The tables an export writes, by file stem."""
        out = {"answers": self.answers, "marks": self.marks}
        if self.cases is not None:
            out["cases"] = self.cases
        return out


def _coded(item: Item, answer: Any) -> tuple[float, str | None]:
    """(value, label) of one stored answer (see ``ANSWER_COLUMNS``); unanswered: (nan, None)."""
    if answer is None or answer == "":
        return (np.nan, None)
    if item.type == "likert":
        return (float(answer), str(answer))
    if item.type == "yes_no":
        return (1.0 if answer == "yes" else 0.0, str(answer))
    if item.type == "single_choice":
        pos = item.choices.index(answer) + 1 if answer in item.choices else np.nan
        return (float(pos), str(answer))
    if item.type == "diagnosis":
        return (float(answer.get("confidence", np.nan)), str(answer.get("label", "")))
    return (np.nan, str(answer))


def _effective(s: Session, study_id: str) -> dict[int, tuple[Response, bool]]:
    """assignment id -> (its current response, whether it is a correction)."""
    rows = s.scalars(
        select(Response)
        .join(Assignment, Assignment.id == Response.assignment_id)
        .where(Assignment.study_id == study_id)
        .order_by(Response.id)
    ).all()
    superseded = {r.supersedes_id for r in rows if r.supersedes_id is not None}
    out: dict[int, tuple[Response, bool]] = {}
    for r in rows:
        if r.id not in superseded:
            out[r.assignment_id] = (r, r.supersedes_id is not None)
    return out


def tidy_data(
    s: Session,
    study: Study,
    protocol: Protocol,
    *,
    unblinded: bool,
    masks: dict[int, np.ndarray] | None = None,
) -> TidyData:
    """The study's analysis data set, read in one session.

    Parameters
    ----------
    s
        An open session (a snapshot, so that the tables agree).
    study, protocol
        The study row and its registered protocol.
    unblinded
        Whether arms, truth and predictions may be shown (after ``analyze``
        recorded the unblinding); before, ``arm`` holds opaque codes and no
        ``cases`` table is made.
    masks
        Case row id -> integer label mask, for the region under each cue mark
        (after unblinding only); cases without one get an empty region.
    """
    items = {i.id: i for i in protocol.instrument.items}
    roles = dict(s.execute(select(Rater.id, Rater.role).where(Rater.study_id == study.id)).all())
    sessions = dict(
        s.execute(
            select(ReadingSession.id, ReadingSession.number).where(
                ReadingSession.study_id == study.id
            )
        ).all()
    )
    stim_rows = s.execute(
        select(Stimulus.id, Stimulus.code, Stimulus.case_id, Arm.arm_key)
        .join(Arm, Arm.id == Stimulus.arm_id)
        .where(Stimulus.study_id == study.id)
    ).all()
    stimuli = {sid: (code, case_id, arm) for sid, code, case_id, arm in stim_rows}
    effective = _effective(s, study.id)
    answer_rows: list[dict[str, Any]] = []
    mark_rows: list[dict[str, Any]] = []
    missing_rows: list[dict[str, Any]] = []
    assignments = s.scalars(
        select(Assignment)
        .where(Assignment.study_id == study.id, Assignment.kind != "training")
        .order_by(Assignment.rater_id, Assignment.session_id, Assignment.position)
    ).all()
    for a in assignments:
        code, case_id, arm_key = stimuli[a.stimulus_id]
        who = rater_pseudonym(a.rater_id, roles.get(a.rater_id, "rater"))
        base = {
            "study": study.id,
            "rater": who,
            "session": sessions.get(a.session_id),
            "case": case_pseudonym(case_id),
            "stimulus": code,
            "arm": arm_key if unblinded else code,
        }
        hit = effective.get(a.id)
        if hit is None:
            if a.kind == "read":
                missing_rows.append(base)
            continue
        resp, corrected = hit
        # the rule the monitor page applies
        passed = not catch_failed(a.expected, resp.answers) if a.kind == "catch" else None
        for item_id, item in items.items():
            value, label = _coded(item, resp.answers.get(item_id))
            answer_rows.append(
                {
                    **base,
                    "item": item_id,
                    "item_type": item.type,
                    "value": value,
                    "label": label,
                    "kind": a.kind,
                    "repeat": a.kind == "repeat",
                    "catch": a.kind == "catch",
                    "catch_passed": passed,
                    "corrected": corrected,
                    "time_on_task_ms": resp.time_on_task_ms,
                    "served_at": a.first_served_at,
                    "answered_at": resp.submitted_at,
                }
            )
        for mark in (resp.cue_marks or {}).get("marks", []):
            region = None
            if unblinded and masks is not None:
                region = _region(masks.get(case_id), mark, protocol)
            mark_rows.append(
                {
                    **{k: base[k] for k in ("rater", "case", "stimulus", "arm")},
                    "kind": a.kind,
                    "x": float(mark["x"]),
                    "y": float(mark["y"]),
                    "tag": mark["tag"],
                    "region": region,
                }
            )
    answers = _frame(answer_rows, ANSWER_COLUMNS)
    marks = _frame(mark_rows, MARK_COLUMNS)
    cases = _cases(s, study, protocol) if unblinded else None
    missing = pd.DataFrame(
        missing_rows, columns=["study", "rater", "session", "case", "stimulus", "arm"]
    )
    return TidyData(study.id, unblinded, answers, marks, cases, missing)


def _frame(rows: list[dict[str, Any]], columns: dict[str, tuple[str, str]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(columns))
    for name, (kind, _) in columns.items():
        if kind == "integer":
            frame[name] = pd.to_numeric(frame[name]).astype("Int64")
        elif kind == "boolean":
            frame[name] = frame[name].map(_as_bool, na_action="ignore").astype("boolean")
        elif kind == "number":
            frame[name] = pd.to_numeric(frame[name]).astype(float)
        elif kind == "datetime":
            frame[name] = pd.to_datetime(frame[name], utc=True)
        else:
            frame[name] = frame[name].astype("string")
    return frame


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value == "True"
    return bool(value)


def _region(mask: np.ndarray | None, mark: dict[str, Any], protocol: Protocol) -> str | None:
    if mask is None:
        return None
    h, w = mask.shape[:2]
    row = min(int(mark["y"] * h), h - 1)
    col = min(int(mark["x"] * w), w - 1)
    code = int(mask[row, col])
    return protocol.data.mask_labels.get(code, "background") if code else "background"


def _cases(s: Session, study: Study, protocol: Protocol) -> pd.DataFrame:
    stratify = protocol.sampling.stratify if protocol.sampling is not None else None
    strata = list(stratify.by) if stratify is not None else []
    rows = []
    for case, pred in s.execute(
        select(Case, Prediction)
        .outerjoin(Prediction, Prediction.case_id == Case.id)
        .where(Case.study_id == study.id, Case.enrolled.is_(True))
        .order_by(Case.id)
    ):
        row = {
            "case": case_pseudonym(case.id),
            "image_sha256": case.image_sha256,
            "truth": case.label,
            "predicted": pred.predicted_label if pred is not None else None,
            "probability": pred.probability_calibrated if pred is not None else None,
            "correct": (pred.predicted_label == case.label) if pred is not None else None,
            "split": case.split,
        }
        for name in strata:
            if name not in row:
                row[name] = case.label if name == "label" else (case.meta or {}).get(name)
        rows.append(row)
    columns = dict(CASE_COLUMNS)
    for name in strata:
        columns.setdefault(name, ("string", f"stratification variable {name!r} of the sample"))
    return _frame(rows, columns)


def data_dictionary(data: TidyData) -> pd.DataFrame:
    """One row per column of every exported table: table, column, type, description."""
    specs = {"answers": ANSWER_COLUMNS, "marks": MARK_COLUMNS}
    if data.cases is not None:
        extra = {c: ("string", f"stratification variable {c!r}") for c in data.cases.columns}
        specs["cases"] = {**extra, **CASE_COLUMNS}
        specs["cases"] = {c: specs["cases"][c] for c in data.cases.columns}
    rows = [
        {"table": table, "column": col, "type": kind, "description": text}
        for table, spec in specs.items()
        for col, (kind, text) in spec.items()
    ]
    return pd.DataFrame(rows)


def _csv_bytes(frame: pd.DataFrame) -> bytes:
    buf = io.StringIO()
    out = frame.copy()
    for col in out.columns:
        if isinstance(out[col].dtype, pd.DatetimeTZDtype):
            out[col] = out[col].map(lambda t: None if pd.isna(t) else t.isoformat())
    out.to_csv(buf, index=False, lineterminator="\n")
    return buf.getvalue().encode("utf-8")


def data_digest(data: TidyData) -> str:
    """SHA-256 over the canonical CSV of every table: what an analysis run used."""
    h = hashlib.sha256()
    for name, frame in sorted(data.tables().items()):
        h.update(f"{name}\n".encode())
        h.update(_csv_bytes(frame))
    return h.hexdigest()


def write_tables(data: TidyData, out_dir: Path, formats: Iterable[str] = ("csv",)) -> list[Path]:
    """Write every table (and ``data_dictionary.csv``) into ``out_dir``; the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    tables = {**data.tables(), "data_dictionary": data_dictionary(data)}
    for name, frame in tables.items():
        for fmt in formats:
            path = out_dir / f"{name}.{fmt}"
            if fmt == "csv":
                path.write_bytes(_csv_bytes(frame))
            else:
                frame.to_parquet(path, index=False)
            written.append(path)
    return written


def read_tables(folder: Path) -> dict[str, pd.DataFrame]:
    """Read the CSV tables an export wrote, with their dictionary's types."""
    dictionary = pd.read_csv(folder / "data_dictionary.csv", dtype=str)
    out: dict[str, pd.DataFrame] = {}
    for table, spec in dictionary.groupby("table", sort=False):
        path = folder / f"{table}.csv"
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
        columns = {
            str(c): (str(k), str(d))
            for c, k, d in zip(spec["column"], spec["type"], spec["description"], strict=True)
        }
        records = [{str(k): v for k, v in r.items()} for r in frame.to_dict("records")]
        out[str(table)] = _frame(records, columns)
    return out
