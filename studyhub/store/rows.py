"""Row digests: what binds every stored fact to the audit chain.

Every write transaction (:meth:`studyhub.store.db.Store.write`) records, in the
audit event it appends, the SHA-256 of each row it created or changed and a
tombstone (``null``) for each row it deleted. :func:`studyhub.store.verify.verify_store`
recomputes the digest of every row of every bound table and compares it with
the last event that recorded the row, so an edit, insertion or deletion made
outside studyhub is found, and named, even when the audit table itself is left
untouched.

A row's digest is computed from the row as read back from the database inside
the writing transaction, through the same column types that verification uses
(blobs by their SHA-256, times in UTC, JSON canonicalised), so the two always
see the same values. Columns holding NULL are left out: a migration that adds a
nullable column keeps every existing row's digest. A migration that fills a
column of existing rows must record their new digests in an event of its own.

Rows that the ORM flushes are tracked automatically. A statement that writes a
bound table directly (a Core ``insert``/``update``) must name the rows it wrote
with :func:`bind_rows`; a write transaction that leaves such a statement
unbound, or that changes rows without appending an audit event, is refused.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, event, inspect, select
from sqlalchemy.orm import ORMExecuteState, Session

from studyhub.errors import StoreError
from studyhub.store.models import Base

__all__ = [
    "BOUND_TABLES",
    "UNBOUND_TABLES",
    "RowDigest",
    "bind_rows",
    "column_hash",
    "digest_of_columns",
    "digest_row",
    "encode_value",
    "install_tracking",
    "iter_table_digests",
    "select_rows",
    "take_touched",
    "touched_digests",
]

#: Tables whose rows are not facts of a study: the chain itself and sign-in throttling.
UNBOUND_TABLES = frozenset({"audit_event", "audit_head", "auth_attempt"})

#: Every other table of the schema is bound to the chain (a new table is bound by default).
BOUND_TABLES: tuple[str, ...] = tuple(
    sorted(name for name in Base.metadata.tables if name not in UNBOUND_TABLES)
)

_TOUCHED = "studyhub.rows_touched"
_UNBOUND_DML = "studyhub.unbound_dml"
_COLUMN_PREFIX = 8


@dataclass(frozen=True)
class RowDigest:
    """The SHA-256 of one row, and a short fingerprint of each non-null column.

    The full digest proves the row; the column fingerprints (first 8 hex digits
    of each column's SHA-256) only say *which* columns differ when it does not.
    """

    sha256: str
    columns: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "columns": self.columns}

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> RowDigest:
        return cls(str(value["sha256"]), {str(k): str(v) for k, v in value["columns"].items()})

    def differing_columns(self, other: RowDigest) -> list[str]:
        """Columns whose fingerprints differ, including columns only one side has."""
        names = sorted(set(self.columns) | set(other.columns))
        return [n for n in names if self.columns.get(n) != other.columns.get(n)]


_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _encode(value: Any) -> str:
    """A column value as canonical, typed text: blobs by SHA-256, times in UTC, JSON sorted."""
    if isinstance(value, str):
        return "str:" + value
    if isinstance(value, bool):
        return "bool:" + ("1" if value else "0")
    if isinstance(value, int):
        return f"int:{value}"
    if isinstance(value, float):
        return "float:" + repr(value)
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        return f"bytes:{len(data)}:{hashlib.sha256(data).hexdigest()}"
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return "time:" + value.astimezone(dt.UTC).isoformat(timespec="microseconds")
    return "json:" + _JSON.encode(value)


def encode_value(value: Any) -> str:
    """A column value as the canonical typed text its digest covers (blobs by SHA-256)."""
    return _encode(value)


def column_hash(name: str, encoded: str) -> str:
    """The SHA-256 of one column, from its name and :func:`encode_value` text."""
    return hashlib.sha256(f"{name}={encoded}".encode()).hexdigest()


def digest_row(table: str, pk: str, values: Mapping[str, Any]) -> RowDigest:
    """The digest of one row given its column values (NULL columns are left out)."""
    return digest_of_columns(
        table,
        pk,
        {
            name: column_hash(name, _encode(value))
            for name, value in sorted(values.items())
            if value is not None
        },
    )


def digest_of_columns(table: str, pk: str, columns: Mapping[str, str]) -> RowDigest:
    """The digest of one row given each non-null column's :func:`column_hash`.

    What an offline verifier uses: a row can be proven from its columns' hashes,
    so a column withheld from an evidence package (a file path) is given by its
    hash alone.
    """
    columns = dict(sorted(columns.items()))
    body = json.dumps(
        {"table": table, "pk": pk, "columns": columns}, sort_keys=True, separators=(",", ":")
    )
    digest = hashlib.sha256(body.encode()).hexdigest()
    return RowDigest(digest, {k: v[:_COLUMN_PREFIX] for k, v in columns.items()})


def _table(name: str) -> Table:
    return Base.metadata.tables[name]


def _pk_column(table: Table) -> Any:
    (column,) = table.primary_key.columns
    return column


def select_rows(table: Table, available: Iterable[str] | None = None) -> Any:
    """SELECT of a table's columns as digests read them (``available``: only those)."""
    return _select_rows(table, available)


def _select_rows(table: Table, available: Iterable[str] | None = None) -> Any:
    names = set(available) if available is not None else None
    cols = [c for c in table.columns if names is None or c.name in names]
    return select(*cols)


def touched_digests(
    session: Session, touched: Mapping[str, set[Any]]
) -> dict[str, dict[str, dict[str, Any] | None]]:
    """Read back the rows ``touched`` (table -> primary keys) and digest them.

    A row that no longer exists (deleted in this transaction) is recorded as
    ``None``: a tombstone that says its absence is legitimate.
    """
    out: dict[str, dict[str, dict[str, Any] | None]] = {}
    for name in sorted(touched):
        keys = sorted(touched[name], key=str)
        if not keys:
            continue
        table = _table(name)
        pk = _pk_column(table)
        found: dict[str, dict[str, Any] | None] = {str(k): None for k in keys}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            for row in session.execute(_select_rows(table).where(pk.in_(chunk))).mappings():
                key = str(row[pk.name])
                found[key] = digest_row(name, key, dict(row)).to_json()
        out[name] = found
    return out


def iter_table_digests(
    session: Session, name: str, available: Iterable[str] | None = None
) -> Iterator[tuple[str, RowDigest]]:
    """Every row of one bound table with its digest, streamed.

    ``available`` limits the columns read to those the database has (a migration
    binding rows of an older schema); NULL columns do not count, so the digest is
    the same either way.
    """
    table = _table(name)
    pk = _pk_column(table)
    stmt = _select_rows(table, available).order_by(pk).execution_options(yield_per=200)
    for row in session.execute(stmt).mappings():
        key = str(row[pk.name])
        yield key, digest_row(name, key, dict(row))


# --- tracking the rows a write transaction touches ----------------------------------


def _touched(session: Session) -> dict[str, set[Any]]:
    touched = session.info.get(_TOUCHED)
    if touched is None:
        touched = session.info[_TOUCHED] = {}
    return touched


def bind_rows(session: Session, table: str, keys: Iterable[Any]) -> None:
    """Name the rows of ``table`` that a Core statement in this write created or changed."""
    if table not in BOUND_TABLES:
        raise StoreError(f"internal: {table!r} is not a table bound to the audit chain")
    _touched(session).setdefault(table, set()).update(keys)
    unbound = session.info.get(_UNBOUND_DML)
    if unbound:
        unbound.discard(table)


def take_touched(session: Session) -> dict[str, set[Any]]:
    """The rows touched since the last call (table -> primary keys); resets the record."""
    touched = _touched(session)
    taken = {name: set(keys) for name, keys in touched.items() if keys}
    touched.clear()
    return taken


def unbound_statements(session: Session) -> set[str]:
    """Bound tables written by a Core statement whose rows were not named by :func:`bind_rows`."""
    return set(session.info.get(_UNBOUND_DML) or ())


def install_tracking(session: Session) -> None:
    """Track, on ``session``, every bound row the ORM flushes and every direct DML statement."""
    session.info[_TOUCHED] = {}
    session.info[_UNBOUND_DML] = set()
    event.listen(session, "after_flush", _after_flush)
    event.listen(session, "do_orm_execute", _on_execute)


def _after_flush(session: Session, _context: Any) -> None:
    touched = _touched(session)
    for obj in (*session.new, *session.dirty, *session.deleted):
        state = inspect(obj)
        table = state.mapper.local_table
        name = getattr(table, "name", None)
        if name not in BOUND_TABLES:
            continue
        if obj in session.dirty and not session.is_modified(obj, include_collections=False):
            continue
        identity = state.mapper.primary_key_from_instance(obj)
        if len(identity) != 1 or identity[0] is None:
            raise StoreError(f"internal: a {name} row has no single primary key to bind")
        touched.setdefault(str(name), set()).add(identity[0])


def _on_execute(state: ORMExecuteState) -> None:
    if not (state.is_insert or state.is_update or state.is_delete):
        return
    table = getattr(state.statement, "table", None)
    name = getattr(table, "name", None)
    if name in BOUND_TABLES:
        state.session.info.setdefault(_UNBOUND_DML, set()).add(str(name))
