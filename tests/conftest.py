"""Fixtures shared by the whole suite: the CLI runner and the database backends."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.paths import DEMO_PLAN, DEMO_PROTOCOL

PG_URL_ENV = "STUDYHUB_TEST_PG_URL"


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    """Run ``studyhub ARGS`` in-process, as the console script does."""
    from studyhub.cli import main

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        else:  # pragma: no cover - main always exits
            code = 0
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture
def demo_copy(tmp_path: Path) -> Path:
    """A copy of the demo protocol and plan in tmp_path/protocols and tmp_path/analysis."""
    (tmp_path / "protocols").mkdir()
    (tmp_path / "analysis").mkdir()
    (tmp_path / "protocols" / DEMO_PROTOCOL.name).write_text(DEMO_PROTOCOL.read_text())
    (tmp_path / "analysis" / DEMO_PLAN.name).write_text(DEMO_PLAN.read_text())
    return tmp_path / "protocols" / DEMO_PROTOCOL.name


def _pg_admin_url() -> str | None:
    url = os.environ.get(PG_URL_ENV)
    if url:
        return url
    if os.environ.get("STUDYHUB_REQUIRE_PG"):
        pytest.fail(
            f"STUDYHUB_REQUIRE_PG is set but {PG_URL_ENV} is not: .ci/run must start PostgreSQL"
        )
    return None


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL: a SQLite file, and a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'studyhub.db'}"
        return
    admin = _pg_admin_url()
    if admin is None:
        pytest.skip(f"no PostgreSQL server: set {PG_URL_ENV} (the .ci/run script does)")
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"studyhub_test_{uuid.uuid4().hex[:12]}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(admin).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


@pytest.fixture
def store(db_url: str, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """An open, migrated store; afterwards every row must still match the audit chain.

    The check after the test is the suite-wide proof that every write path binds
    its rows to the chain; tests that tamper with the database on purpose carry
    the ``tampers`` marker.
    """
    from studyhub.store.db import open_store
    from studyhub.store.verify import verify_store

    s = open_store(db_url)
    yield s
    try:
        if request.node.get_closest_marker("tampers") is None:
            with s.snapshot() as session:
                report = verify_store(session)
            assert report.ok, "\n".join(report.render())
    finally:
        s.dispose()
