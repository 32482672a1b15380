"""Readers never wait for writers on SQLite: opening the store takes no write lock."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

from studyhub.protocol import load_study
from studyhub.store.db import open_store
from studyhub.store.studies import register


def _finishes_while_locked(db: Path, work: Callable[[], object]) -> object:
    """Run ``work`` while another connection holds SQLite's write lock; return its result.

    A reader that needed the write lock would wait for the busy timeout (60 s); the
    join limit of 20 s only keeps a regression from hanging the suite.
    """
    holder = sqlite3.connect(db, isolation_level=None, timeout=0)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("UPDATE audit_head SET seq = seq WHERE id = 1")
    result: list[object] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            result.append(work())
        except BaseException as exc:  # pragma: no cover - reported below
            failure.append(exc)

    try:
        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        worker.join(20)
        assert not worker.is_alive(), "the reader waited behind the writer's lock"
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    if failure:
        raise failure[0]
    return result[0]


def test_status_and_audit_verify_run_while_a_writer_holds_the_lock(
    tmp_path: Path,
    demo_copy: Path,
    cli,  # type: ignore[no-untyped-def]
) -> None:
    db = tmp_path / "studyhub.db"
    store = open_store(f"sqlite:///{db}")
    register(store, load_study(demo_copy), actor="lead")
    store.dispose()

    status = _finishes_while_locked(db, lambda: cli("--db", f"sqlite:///{db}", "status"))
    assert status.exit_code == 0, status.output  # type: ignore[attr-defined]
    assert "registered" in status.stdout  # type: ignore[attr-defined]

    verify = _finishes_while_locked(db, lambda: cli("--db", f"sqlite:///{db}", "audit", "verify"))
    assert verify.exit_code == 0, verify.output  # type: ignore[attr-defined]
    assert "OK" in verify.stdout  # type: ignore[attr-defined]
