"""A study's stored rows and audit events as an evidence package holds them, and back.

The package carries every row of the study that the audit chain binds, each
column as the canonical typed text its digest covers
(:func:`studyhub.store.rows.encode_value`: blobs by length and SHA-256, times in
UTC, JSON sorted), so that a verifier recomputes every row digest offline and
compares it with the chain. Two kinds of column are not given as values:

- *hashed*: file paths and case keys of the user's data (``case.case_key``,
  ``case.source``, ``case.mask_source``, ``study.protocol_path``) are given as
  their column hash only; the row's digest is still proven;
- *withheld*: a rater account's name, single sign-on identity, qualifications and
  token hash or hint are left out entirely (a hash of a name could be confirmed
  by guessing), so rater rows are listed but their digest cannot be checked.

:func:`load_scratch` rebuilds the rows in a scratch SQLite database with the
store's schema, so ``verify`` derives the analysis data with the same code
``analyze`` used.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from sqlalchemy import Engine, create_engine, insert, select
from sqlalchemy.orm import Session

from studyhub.store.models import AuditEvent, Base
from studyhub.store.rows import BOUND_TABLES, column_hash, digest_of_columns, encode_value

__all__ = [
    "HASHED",
    "TABLE_ORDER",
    "WITHHELD",
    "decode_value",
    "event_json",
    "load_scratch",
    "row_digest_problems",
    "study_rows",
]

#: Tables in an order that satisfies their foreign keys.
TABLE_ORDER: Final = (
    "study",
    "amendment",
    "case",
    "model_version",
    "prediction",
    "arm",
    "stimulus",
    "rater",
    "consent",
    "reading_session",
    "assignment",
    "response",
    "analysis_run",
)

#: Columns given by their column hash only (the user's paths and case keys).
HASHED: Final[dict[str, frozenset[str]]] = {
    "case": frozenset({"case_key", "source", "mask_source"}),
    "study": frozenset({"protocol_path"}),
}

#: Columns left out entirely: what could identify a rater.
WITHHELD: Final[dict[str, frozenset[str]]] = {
    "rater": frozenset({"name", "sso_identity", "qualifications", "token_hash", "token_hint"}),
}

if set(TABLE_ORDER) != set(BOUND_TABLES):  # pragma: no cover - a new table must be placed
    raise RuntimeError(f"package_rows.TABLE_ORDER misses bound tables: {set(BOUND_TABLES)}")


def _filter(table: Any, study_id: str, s: Session) -> Any:
    t = Base.metadata.tables
    if table.name == "study":
        return table.c.id == study_id
    if table.name == "prediction":
        cases = select(t["case"].c.id).where(t["case"].c.study_id == study_id)
        return table.c.case_id.in_(cases)
    if table.name == "response":
        assigned = select(t["assignment"].c.id).where(t["assignment"].c.study_id == study_id)
        return table.c.assignment_id.in_(assigned)
    return table.c.study_id == study_id


def study_rows(s: Session, study_id: str) -> dict[str, list[dict[str, Any]]]:
    """table -> the study's rows as the package holds them (see the module docstring)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for name in TABLE_ORDER:
        table = Base.metadata.tables[name]
        (pk,) = table.primary_key.columns
        rows = []
        stmt = select(*table.columns).where(_filter(table, study_id, s)).order_by(pk)
        for row in s.execute(stmt).mappings():
            values: dict[str, str] = {}
            hashes: dict[str, str] = {}
            withheld: list[str] = []
            for col, value in row.items():
                if value is None:
                    continue
                if col in WITHHELD.get(name, ()):
                    withheld.append(col)
                elif col in HASHED.get(name, ()):
                    hashes[col] = column_hash(col, encode_value(value))
                else:
                    values[col] = encode_value(value)
            entry: dict[str, Any] = {"pk": str(row[pk.name]), "values": values}
            if hashes:
                entry["hashes"] = hashes
            if withheld:
                entry["withheld"] = sorted(withheld)
            rows.append(entry)
        out[name] = rows
    return out


def event_json(ev: AuditEvent, *, sealed: bool) -> dict[str, Any]:
    """One audit event as the package holds it; ``sealed`` keeps only its place in the chain."""
    if sealed:
        return {"seq": ev.seq, "prev_hash": ev.prev_hash, "hash": ev.hash, "sealed": True}
    return {
        "seq": ev.seq,
        "study_id": ev.study_id,
        "actor": ev.actor,
        "action": ev.action,
        "payload": ev.payload,
        "rows": ev.rows,
        "created_at": ev.created_at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
        "prev_hash": ev.prev_hash,
        "hash": ev.hash,
    }


def decode_value(encoded: str) -> Any:
    """The value of one :func:`~studyhub.store.rows.encode_value` text (blobs: None)."""
    kind, _, text = encoded.partition(":")
    if kind == "str":
        return text
    if kind == "int":
        return int(text)
    if kind == "float":
        return float(text)
    if kind == "bool":
        return text == "1"
    if kind == "time":
        return dt.datetime.fromisoformat(text)
    if kind == "json":
        return json.loads(text)
    if kind == "bytes":
        return None
    raise ValueError(f"unknown encoded value kind {kind!r}")


@dataclass(frozen=True)
class RowProblem:
    """One packaged row that does not match the chain."""

    table: str
    pk: str
    problem: str

    def render(self) -> str:
        return f"audit/rows/{self.table}.jsonl row {self.pk}: {self.problem}"


def row_digest_problems(
    rows: Mapping[str, list[dict[str, Any]]],
    recorded: Mapping[tuple[str, str], str | None],
    study_recorded: Iterable[tuple[str, str]],
) -> tuple[list[RowProblem], int, int]:
    """Check every packaged row against the digest the chain recorded last.

    ``recorded`` is (table, pk) -> digest (None for a recorded deletion) over the
    whole packaged chain; ``study_recorded`` the rows the study's own events
    recorded, each of which must be in the package. Returns the problems, the
    rows proven, and the rows withheld (rater accounts).
    """
    problems: list[RowProblem] = []
    proven = withheld = 0
    present: set[tuple[str, str]] = set()
    for table, entries in rows.items():
        for entry in entries:
            key = (table, str(entry["pk"]))
            present.add(key)
            if entry.get("withheld"):
                withheld += 1
                if key not in recorded:
                    problems.append(RowProblem(table, key[1], "no audit event records this row"))
                continue
            columns = {c: column_hash(c, v) for c, v in entry["values"].items()}
            columns.update(entry.get("hashes", {}))
            digest = digest_of_columns(table, key[1], columns).sha256
            if key not in recorded:
                problems.append(RowProblem(table, key[1], "no audit event records this row"))
            elif recorded[key] is None:
                problems.append(RowProblem(table, key[1], "its deletion was recorded"))
            elif recorded[key] != digest:
                problems.append(
                    RowProblem(table, key[1], "does not match the digest the audit chain recorded")
                )
            else:
                proven += 1
    for key in sorted(set(study_recorded)):
        if key not in present and recorded.get(key) is not None:
            problems.append(
                RowProblem(
                    key[0], key[1], "recorded by the audit chain but missing from the package"
                )
            )
    return problems, proven, withheld


def load_scratch(
    rows: Mapping[str, list[dict[str, Any]]],
    events: Iterable[Mapping[str, Any]],
    blobs: Mapping[tuple[str, str, str], bytes] | None = None,
) -> Engine:
    """A scratch in-memory SQLite database holding the packaged rows and full events.

    Hashed and withheld columns get placeholders (``case-<id>`` for a case key,
    ``<role>-<id>`` for a rater's name); blobs come from ``blobs`` ((table, pk,
    column) -> bytes) or stay empty.
    """
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    blobs = blobs or {}
    with engine.begin() as conn:
        for name in TABLE_ORDER:
            table = Base.metadata.tables[name]
            batch = []
            for entry in rows.get(name, []):
                values: dict[str, Any] = dict.fromkeys(table.columns.keys())
                values.update({c: decode_value(v) for c, v in entry["values"].items()})
                for col in (*entry.get("hashes", {}), *entry.get("withheld", [])):
                    values[col] = _placeholder(name, col, entry["pk"], values)
                for (t, pk, col), data in blobs.items():
                    if t == name and pk == entry["pk"]:
                        values[col] = data
                batch.append(values)
            if batch:
                conn.execute(insert(table), batch)
        full = [dict(e) for e in events if not e.get("sealed")]
        for e in full:
            e.setdefault("rows", None)
        if full:
            conn.execute(
                insert(AuditEvent.__table__),  # type: ignore[arg-type]
                [{**e, "created_at": dt.datetime.fromisoformat(e["created_at"])} for e in full],
            )
    return engine


def _placeholder(table: str, column: str, pk: str, values: Mapping[str, Any]) -> Any:
    if table == "case" and column == "case_key":
        return f"case-{pk}"
    if table == "rater" and column == "name":
        return f"{values.get('role', 'rater')}-{pk}"
    if column in ("qualifications",):
        return {}
    if column in ("sso_identity", "mask_source"):
        return None
    return "withheld"


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSON-lines file."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
