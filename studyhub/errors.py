"""The one exception hierarchy of studyhub.

Library code raises these; only :mod:`studyhub.cli` turns them into exit codes
(:class:`InputError` and its children exit 2, anything else exits 1). Every
message names what is wrong, the value found and the fix.
"""

from __future__ import annotations

__all__ = [
    "AccessError",
    "AuditChainError",
    "AuthError",
    "DataError",
    "InputError",
    "LifecycleError",
    "ProtocolError",
    "StoreError",
    "StudyhubError",
]


class StudyhubError(Exception):
    """Base class of every error studyhub raises on purpose."""

    exit_code = 1


class InputError(StudyhubError):
    """The user gave something unusable: a file, a value, a command-line option."""

    exit_code = 2


class ProtocolError(InputError):
    """A protocol or analysis plan is malformed or inconsistent."""


class DataError(InputError):
    """A data frame, manifest or data set cannot be analysed as asked."""


class LifecycleError(InputError):
    """The study is not in a state that allows the requested step."""


class AuthError(InputError):
    """A sign-in failed or is throttled; the message never says which part was wrong."""


class AccessError(InputError):
    """A signed-in person asked for something their role or their queue does not allow."""


class StoreError(StudyhubError):
    """The database could not be opened, migrated or written."""


class AuditChainError(StudyhubError):
    """The audit log's hash chain is broken."""

    def __init__(self, message: str, *, sequence: int | None = None) -> None:
        super().__init__(message)
        self.sequence = sequence
