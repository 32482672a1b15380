"""Holding the store's write lock from another connection, and work that must not wait for it."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.engine import make_url

from studyhub.store.db import Store
from studyhub.store.models import AuditHead

T = TypeVar("T")
#: Join limit for work that must not wait behind a writer (which would wait the 60 s busy
#: timeout); it only keeps a regression from hanging the suite.
JOIN_S = 20


@contextmanager
def write_lock_held(store: Store) -> Iterator[None]:
    """Another connection holds the store's write lock until the block ends.

    SQLite: a raw ``BEGIN IMMEDIATE`` transaction; PostgreSQL: the audit chain's
    head row, which every write transaction locks first.
    """
    if store.engine.dialect.name == "sqlite":
        holder = sqlite3.connect(str(make_url(store.url).database), isolation_level=None, timeout=0)
        holder.execute("BEGIN IMMEDIATE")
        holder.execute("UPDATE audit_head SET seq = seq WHERE id = 1")
        try:
            yield
        finally:
            holder.execute("ROLLBACK")
            holder.close()
    else:
        with store.engine.connect() as conn:
            tx = conn.begin()
            conn.execute(select(AuditHead.seq).where(AuditHead.id == 1).with_for_update())
            try:
                yield
            finally:
                tx.rollback()


def finishes(work: Callable[[], T]) -> T:
    """Run ``work`` in a thread; fail (instead of hanging) if it does not finish."""
    result: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            result.append(work())
        except BaseException as exc:  # pragma: no cover - reported below
            failure.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(JOIN_S)
    assert not worker.is_alive(), "the work waited behind the writer's lock"
    if failure:
        raise failure[0]
    return result[0]
