"""Opening the store: engines, pragmas, automatic migrations, write transactions.

SQLite (a file in the working folder) is the default; any SQLAlchemy URL works,
PostgreSQL included. Alembic migrations are the only source of the schema and
run automatically the first time a database is used.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from studyhub.errors import InputError, StoreError
from studyhub.store.audit import begin_events, finish_events, lock_head
from studyhub.store.rows import install_tracking

__all__ = ["DEFAULT_URL", "Store", "alembic_config", "open_store", "resolve_url"]

DEFAULT_URL = "sqlite:///studyhub.db"
MIGRATIONS = Path(__file__).parent / "migrations"
_migrate_lock = threading.Lock()
# Execution option that marks the connections of read sessions.
_MODE = "studyhub_mode"


def resolve_url(url: str | None) -> str:
    """``--db`` wins, then ``STUDYHUB_DB``, then ``studyhub.db`` in the working folder."""
    return url or os.environ.get("STUDYHUB_DB") or DEFAULT_URL


def alembic_config(url: str) -> Config:
    """An Alembic configuration for ``url`` that needs no alembic.ini."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


@dataclass
class Store:
    """An open database: its engine and session factories for reads and for writes."""

    engine: Engine
    url: str

    def __post_init__(self) -> None:
        self._writes = sessionmaker(self.engine, expire_on_commit=False)
        reads = self.engine.execution_options(**{_MODE: "read"})
        if self.engine.dialect.name != "sqlite":
            # At READ COMMITTED every statement reads its own snapshot anyway; without
            # BEGIN and ROLLBACK a read costs two fewer round trips to the server.
            reads = reads.execution_options(isolation_level="AUTOCOMMIT")
        self._reads = sessionmaker(reads, expire_on_commit=False)
        snapshot = self.engine.execution_options(**{_MODE: "read"})
        if self.engine.dialect.name != "sqlite":
            snapshot = snapshot.execution_options(isolation_level="REPEATABLE READ")
        self._snapshots = sessionmaker(snapshot, expire_on_commit=False)
        self._local_writer = threading.Lock()
        #: Per-store scratch space for services' caches, dropped with the store.
        self.caches: dict[str, Any] = {}

    def session(self) -> Session:
        """A session for reads; nothing it writes is committed (writes go through :meth:`write`).

        On SQLite a read takes no lock: it reads a consistent snapshot of the
        write-ahead log while writers go on.
        """
        return self._reads()

    @contextmanager
    def snapshot(self) -> Iterator[Session]:
        """A read-only session that sees one consistent snapshot of the whole database.

        For reads that must agree with each other across many statements (``audit
        verify`` reads the chain, then every table, while writers go on): REPEATABLE
        READ on PostgreSQL, one deferred transaction on SQLite's write-ahead log.
        Neither waits for writers.
        """
        with self._snapshots() as session:  # closing rolls the read transaction back
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One atomic write: commits on success, rolls back on any error.

        Writers are serialised on the audit chain's head row (``SELECT ... FOR
        UPDATE`` on PostgreSQL; ``BEGIN IMMEDIATE`` on SQLite), taken first so
        that every transaction locks in the same order and none can deadlock.
        The audit events the block appended are written at its end, with the
        digests of every row it created, changed or deleted
        (:func:`studyhub.store.audit.finish_events`); a block that changes rows
        without an event is rolled back. On SQLite the threads of one process
        first queue on a lock of their own:
        SQLite's busy handler retries a locked database with sleeps of up to
        100 ms, which gave concurrent writers a long latency tail (other
        processes still meet the busy handler).
        """
        if self.engine.dialect.name == "sqlite":
            with self._local_writer, self._write_transaction() as session:
                yield session
        else:
            with self._write_transaction() as session:
                yield session

    @contextmanager
    def _write_transaction(self) -> Iterator[Session]:
        with self._writes() as session, session.begin():
            lock_head(session)
            install_tracking(session)
            begin_events(session)
            yield session
            finish_events(session)

    def dispose(self) -> None:
        self.engine.dispose()


def open_store(url: str | None = None, *, create: bool = True, migrate: bool = True) -> Store:
    """Open (and, on first use, create and migrate) the store at ``url``.

    Parameters
    ----------
    url
        Any SQLAlchemy URL; ``None`` uses ``STUDYHUB_DB`` or ``sqlite:///studyhub.db``.
    create
        When false, a SQLite file that does not exist is an error instead of being
        created (read-only commands must not leave files behind).
    migrate
        Upgrade the schema to the newest migration when it is behind.
    """
    url = resolve_url(url)
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise InputError(
            f"database URL {url!r} is not a SQLAlchemy URL; use e.g. sqlite:///studyhub.db "
            "or postgresql+psycopg://user:password@host/dbname"
        ) from None
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:"):
            raise InputError(
                f"database URL {url!r} is an in-memory SQLite database, which forgets everything "
                "when the command ends; give a file, e.g. sqlite:///studyhub.db"
            )
        path = Path(database)
        if not path.exists() and not create:
            raise InputError(
                f"no studyhub database at {str(path)!r}; register a protocol first "
                "(studyhub register PROTOCOL) or pass --db / STUDYHUB_DB"
            )
        if not path.parent.exists():
            raise InputError(
                f"the folder of database file {str(path)!r} does not exist; create it or choose "
                "another --db path"
            )
    engine = _engine(url, parsed.get_backend_name())
    store = Store(engine=engine, url=url)
    if migrate:
        try:
            _migrate(store)
        except OperationalError as exc:
            engine.dispose()
            raise StoreError(
                f"could not open the database {parsed.render_as_string(hide_password=True)}: "
                f"{exc.orig}; check the URL, that the server runs, and the credentials"
            ) from None
    return store


def _engine(url: str, backend: str) -> Engine:
    kwargs: dict[str, Any] = {}
    if backend == "sqlite":
        kwargs["connect_args"] = {"timeout": 60, "check_same_thread": False}
    else:
        kwargs.update(pool_pre_ping=True, pool_size=10, max_overflow=40)
    try:
        engine = create_engine(url, **kwargs)
    except (ArgumentError, ImportError, SQLAlchemyError) as exc:
        raise InputError(
            f"cannot use database URL {url!r}: {exc}; for PostgreSQL install studyhub[postgres] "
            "and use postgresql+psycopg://..."
        ) from None
    if backend == "sqlite":
        _sqlite_pragmas(engine)
    return engine


def _sqlite_pragmas(engine: Engine) -> None:
    """WAL, foreign keys, a busy timeout, and BEGIN IMMEDIATE for every write transaction.

    pysqlite's own transaction handling is switched off (the documented SQLAlchemy
    recipe) so that a write transaction takes the write lock at BEGIN and never
    fails to upgrade a read lock midway; read sessions begin a plain (deferred)
    transaction and take no lock.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        read = conn.get_execution_options().get(_MODE) == "read"
        conn.exec_driver_sql("BEGIN" if read else "BEGIN IMMEDIATE")


def _migrate(store: Store) -> None:
    cfg = alembic_config(store.url)
    head = ScriptDirectory.from_config(cfg).get_current_head()
    # The check only reads: on SQLite a read connection begins a deferred transaction, so
    # opening the store never waits behind a writer (BEGIN IMMEDIATE would).
    with store.engine.execution_options(**{_MODE: "read"}).connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    if current == head:
        return
    with _migrate_lock, store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
