"""Alembic owns the schema: the migrations build it, and they agree with the models."""

from __future__ import annotations

import datetime as dt

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, select, text

from studyhub.store.db import alembic_config
from studyhub.store.models import Base


def test_migrations_build_every_table(store) -> None:  # type: ignore[no-untyped-def]
    tables = set(inspect(store.engine).get_table_names())
    assert set(Base.metadata.tables) <= tables
    assert "alembic_version" in tables


def test_store_is_at_the_newest_migration(store) -> None:  # type: ignore[no-untyped-def]
    head = ScriptDirectory.from_config(alembic_config(store.url)).get_current_head()
    with store.engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == head


def test_models_and_migrations_agree(store) -> None:  # type: ignore[no-untyped-def]
    with store.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == [], f"models and migrations differ; add a migration: {diff}"


def test_opening_twice_is_harmless(db_url: str) -> None:
    from studyhub.store.db import open_store

    for _ in range(2):
        s = open_store(db_url)
        s.dispose()


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import text

    from studyhub.store.db import open_store

    s = open_store(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        with s.engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    finally:
        s.dispose()


def _first_release_rows(conn, now) -> None:  # type: ignore[no-untyped-def]
    """A study, an arm and its register event, written as the first releases wrote them."""
    from studyhub.store.audit import GENESIS, _canonical, event_hash

    values = {"id": "old_study", "title": "t", "design": "retrospective", "state": "registered"}
    conn.execute(
        text(
            "INSERT INTO study (id, title, design, state, seed, registration_hash, protocol_hash,"
            " plan_hash, protocol_text, plan_text, protocol_canonical, plan_canonical,"
            " protocol_path, registered_at, updated_at) VALUES (:id, :title, :design, :state, 7,"
            " :h, :h, :h, 'p', 'q', '{}', '{}', 'x.yaml', :now, :now)"
        ),
        {**values, "h": "a" * 64, "now": now},
    )
    conn.execute(
        text(
            "INSERT INTO arm (study_id, arm_key, kind, method, params) "
            "VALUES ('old_study', 'ig', 'method', 'integrated_gradients', '{}')"
        )
    )
    payload = _canonical({"registration_hash": "a" * 64})
    at = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    digest = event_hash(
        seq=1,
        study_id="old_study",
        actor="v0.1",
        action="register",
        payload=payload,
        created_at=at,
        prev_hash=GENESIS,
    )
    conn.execute(
        text(
            "INSERT INTO audit_event (seq, study_id, actor, action, payload, created_at, "
            "prev_hash, hash) VALUES (1, 'old_study', 'v0.1', 'register', :p, :at, :g, :h)"
        ),
        {
            "p": payload,
            "at": at if conn.dialect.name != "sqlite" else at.replace(tzinfo=None),
            "g": GENESIS,
            "h": digest,
        },
    )
    conn.execute(text("UPDATE audit_head SET seq = 1, hash = :h WHERE id = 1"), {"h": digest})


def test_upgrading_an_old_database_keeps_its_data_and_binds_its_rows(db_url: str) -> None:
    """A database made before row binding migrates forward; its rows are bound as found."""
    from alembic import command
    from sqlalchemy import create_engine, update

    from studyhub.store.db import open_store
    from studyhub.store.models import Arm, AuditEvent
    from studyhub.store.verify import verify_store

    engine = create_engine(db_url)
    cfg = alembic_config(db_url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0005")
        now = dt.datetime(2026, 1, 2, 3, 4, 5)
        _first_release_rows(conn, now)
    engine.dispose()
    new = open_store(db_url)
    try:
        with new.engine.connect() as conn:
            assert conn.execute(text("SELECT id FROM study")).scalar() == "old_study"
        with new.snapshot() as s:
            report = verify_store(s)
            assert report.ok, report.render()
            assert report.rows_checked == 2
            events = list(s.scalars(select(AuditEvent).order_by(AuditEvent.seq)))
            assert [e.action for e in events] == ["register", "bind_existing_rows"]
            assert "bound as found" in events[1].payload
        # once bound, an edit of an old row is found
        with new.engine.begin() as conn:
            conn.execute(update(Arm).values(method="saliency"))
        with new.snapshot() as s:
            report = verify_store(s)
        assert not report.ok
        assert [d.render() for d in report.discrepancies] == [
            "arm row 1: changed outside studyhub: method differ (recorded by event 2)"
        ]
    finally:
        new.dispose()
