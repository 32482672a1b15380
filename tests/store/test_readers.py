"""Readers never wait for writers on SQLite: opening the store takes no write lock."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from studyhub.protocol import load_study
from studyhub.store.db import open_store
from studyhub.store.studies import register
from tests.locks import finishes, write_lock_held


def _finishes_while_locked(db: Path, work: Callable[[], object]) -> object:
    """Run ``work`` while another connection holds SQLite's write lock; return its result."""
    store = open_store(f"sqlite:///{db}", create=False)
    try:
        with write_lock_held(store):
            return finishes(work)
    finally:
        store.dispose()


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
