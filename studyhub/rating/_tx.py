"""The rating modules' write transaction."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session

from studyhub.store.db import Store

__all__ = ["write"]

_lock = threading.Lock()


@contextmanager
def write(store: Store) -> Iterator[Session]:
    """:meth:`Store.write`, queued in-process first on SQLite.

    SQLite's busy handler retries a locked database with sleeps of up to 100 ms,
    which gave concurrent raters a long latency tail; threads of one process
    queue on a lock instead (other processes still meet the busy handler).
    PostgreSQL queues on the audit head's row lock as before.
    """
    if store.engine.dialect.name != "sqlite":
        with store.write() as s:
            yield s
        return
    with _lock:
        lock = store.__dict__.setdefault("_rating_write_lock", threading.Lock())
    with lock, store.write() as s:
        yield s
