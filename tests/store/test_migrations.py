"""Alembic owns the schema: the migrations build it, and they agree with the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

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


def test_upgrading_an_old_database_keeps_its_data(db_url: str, demo_copy) -> None:  # type: ignore[no-untyped-def]
    """A database made by the first release migrates forward with its rows intact."""
    from alembic import command
    from sqlalchemy import create_engine, text

    from studyhub.protocol import load_study
    from studyhub.store.audit import verify_chain
    from studyhub.store.db import open_store
    from studyhub.store.studies import register

    engine = create_engine(db_url)
    cfg = alembic_config(db_url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
    engine.dispose()
    # write with the 0001 schema: the stimulus table has no original_png yet
    old = open_store(db_url, migrate=False)
    try:
        register(old, load_study(demo_copy), actor="v0.1")
    finally:
        old.dispose()
    new = open_store(db_url)
    try:
        with new.engine.connect() as conn:
            assert conn.execute(text("SELECT id FROM study")).scalar() == "inspection_demo"
            cols = {c["name"] for c in inspect(conn).get_columns("stimulus")}
            assert {"original_png", "overlay_png", "seed", "duration_ms"} <= cols
        with new.session() as s:
            assert verify_chain(s).ok
    finally:
        new.dispose()
