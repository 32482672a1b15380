"""Which errors count as the store failing (shown to raters as one plain message)."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from studyhub.errors import AccessError, AuthError, InputError, StoreError
from studyhub.rating.outage import STORE_UNAVAILABLE, store_failed


@pytest.mark.parametrize(
    "exc",
    [
        OperationalError("BEGIN IMMEDIATE", {}, sqlite3.OperationalError("database is locked")),
        IntegrityError("INSERT INTO response ...", {}, sqlite3.IntegrityError("NOT NULL")),
        PoolTimeout("QueuePool limit of size 10 overflow 40 reached"),
        sqlite3.DatabaseError("file is not a database"),
        StoreError("could not open the database /srv/study.db: unable to open database file"),
    ],
)
def test_driver_pool_and_store_errors_are_store_failures(exc: BaseException) -> None:
    assert store_failed(exc)


@pytest.mark.parametrize(
    "exc",
    [
        InputError("item 'usefulness' is required"),
        AuthError("sign-in failed"),
        AccessError("assignment 3 is not in the queue of 'alice'"),
        ValueError("a bug"),
    ],
)
def test_what_a_person_asked_for_and_bugs_are_not(exc: BaseException) -> None:
    assert not store_failed(exc)


def test_the_message_says_what_to_do_and_nothing_technical() -> None:
    assert "try again in a minute" in STORE_UNAVAILABLE
    assert "tell the study lead" in STORE_UNAVAILABLE
    for word in ("SQL", "sqlite", "lock", "/", "Error"):
        assert word not in STORE_UNAVAILABLE
