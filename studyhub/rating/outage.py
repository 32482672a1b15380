"""What a front end shows when the store itself fails: one plain message, never the details.

A database that is locked past its busy timeout, unreachable, missing or
unreadable surfaces as a driver error (SQLAlchemy's ``DBAPIError`` family,
``sqlite3.Error``), a pool timeout, or studyhub's
:class:`~studyhub.errors.StoreError`. Their text carries SQL, server paths and
addresses, which a rater must not see and cannot act on. A front end asks
:func:`store_failed` and shows :data:`STORE_UNAVAILABLE` instead, logging the
details for the study lead.
"""

from __future__ import annotations

import sqlite3
from typing import Final

from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from studyhub.errors import StoreError

__all__ = ["STORE_UNAVAILABLE", "store_failed"]

#: The one message a rater sees when the store fails.
STORE_UNAVAILABLE: Final = (
    "The study's database is busy or unavailable; try again in a minute. If it persists, "
    "tell the study lead."
)

_FAILURES = (StoreError, DBAPIError, DisconnectionError, PoolTimeout, sqlite3.Error)


def store_failed(exc: BaseException) -> bool:
    """Whether ``exc`` is the store failing (locked, unreachable, missing, unreadable).

    Errors about what a person asked for (:class:`~studyhub.errors.InputError`
    and its kin) and programming errors are not: they keep their own message
    or traceback.
    """
    return isinstance(exc, _FAILURES)
