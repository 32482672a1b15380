"""What the rating modules share: who is calling, the registered protocol, queue queries.

Every service call re-reads the caller's account in one query (a token revoked
since sign-in is refused on the next call) and takes the protocol from a cache
keyed by the study's registration hash, so the hot paths (``next_item``,
``submit``) read only the rows they use.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, exists, func, select
from sqlalchemy.orm import Session, aliased

from studyhub.errors import AccessError, AuthError, InputError
from studyhub.protocol.schema import Protocol
from studyhub.rating.accounts import AUTH_FAILED, Principal, pseudonym
from studyhub.store.models import Assignment, Consent, Rater, Response, Study
from studyhub.store.studies import registered_protocol_of

__all__ = [
    "Caller",
    "answered",
    "caller",
    "consent_sha256",
    "current_response",
    "own_assignment",
    "protocol_of",
    "queue_counts",
    "require_role",
]

_cache: dict[str, Protocol] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class Caller:
    """The signed-in account as re-read for this call, with its study's state.

    ``id`` and ``state`` are the study's (what :func:`studyhub.store.lifecycle.require`
    reads); ``consented`` says whether the account agreed to the protocol's
    current consent statement.
    """

    rater_id: int
    name: str
    role: str
    id: str
    state: str
    registration_hash: str
    consented: bool

    @property
    def pseudonym(self) -> str:
        """The account's actor in the audit log, e.g. ``rater-12`` (never its name)."""
        return pseudonym(self.role, self.rater_id)


def consent_sha256(protocol: Protocol) -> str:
    """The SHA-256 of the consent statement raters agree to."""
    return hashlib.sha256(protocol.instrument.consent.encode("utf-8")).hexdigest()


def protocol_of(s: Session, study_id: str, registration_hash: str) -> Protocol:
    """The registered protocol of a study, parsed once per registration hash."""
    key = f"{study_id}:{registration_hash}"
    with _lock:
        protocol = _cache.get(key)
    if protocol is None:
        study = s.get(Study, study_id)
        if study is None:  # pragma: no cover - the caller's row names the study
            raise AuthError(AUTH_FAILED)
        # Once per registration and process: a protocol edited in the database is never served.
        protocol = registered_protocol_of(s, study)
        with _lock:
            _cache[key] = protocol
    return protocol


_LATEST_CONSENT = (
    select(Consent.statement_sha256)
    .where(Consent.rater_id == Rater.id)
    .order_by(Consent.id.desc())
    .limit(1)
    .scalar_subquery()
)
# Built once: the hot paths run it on every call.
_CALLER = (
    select(
        Rater.name,
        Rater.role,
        Rater.revoked_at,
        Study.id,
        Study.state,
        Study.registration_hash,
        _LATEST_CONSENT.label("consent"),
    )
    .join(Study, Study.id == Rater.study_id)
    .where(Rater.id == bindparam("rater_id"))
)


def caller(s: Session, principal: Principal) -> tuple[Caller, Protocol]:
    """The principal's account and study, re-read in one query, and the protocol.

    Raises
    ------
    AuthError
        When the account was revoked or does not belong to the principal's study.
    """
    row = s.execute(_CALLER, {"rater_id": principal.rater_id}).first()
    if row is None or row.revoked_at is not None or row.id != principal.study_id:
        raise AuthError(AUTH_FAILED)
    protocol = protocol_of(s, row.id, row.registration_hash)
    consented = row.consent is not None and row.consent == consent_sha256(protocol)
    who = Caller(
        principal.rater_id,
        row.name,
        row.role,
        row.id,
        row.state,
        row.registration_hash,
        consented,
    )
    return who, protocol


def require_role(who: Caller | Rater, *roles: str, doing: str) -> None:
    """Refuse ``doing`` unless the account has one of ``roles``."""
    if who.role not in roles:
        raise AccessError(
            f"account {who.name!r} has role {who.role!r}, which may not {doing}; "
            f"that needs role {' or '.join(roles)}"
        )


def answered() -> Any:
    """SQL: the assignment in the enclosing query has a response."""
    return exists().where(Response.assignment_id == Assignment.id)


def queue_counts(s: Session, rater_id: int) -> tuple[int, int]:
    """Answered assignments and all assignments of a rater, in one query."""
    done_q = (
        select(func.count(Assignment.id))
        .where(Assignment.rater_id == rater_id, answered())
        .scalar_subquery()
    )
    row = s.execute(
        select(func.count(Assignment.id), done_q).where(Assignment.rater_id == rater_id)
    ).one()
    return int(row[1] or 0), int(row[0] or 0)


def current_response(s: Session, assignment_id: int) -> Response | None:
    """The response not superseded by any other (the head of the correction chain)."""
    newer = aliased(Response)
    return s.scalar(
        select(Response)
        .where(
            Response.assignment_id == assignment_id,
            ~exists().where(newer.supersedes_id == Response.id),
        )
        .limit(1)
    )


def own_assignment(s: Session, who: Caller, assignment_id: Any) -> Assignment:
    """The assignment, if it is in this rater's queue; one message for "not yours" and "none"."""
    if isinstance(assignment_id, bool) or not isinstance(assignment_id, int):
        raise InputError(f"assignment id is {assignment_id!r}; pass the served item's id")
    a = s.get(Assignment, assignment_id)
    if a is None or a.rater_id != who.rater_id or a.study_id != who.id:
        raise AccessError(
            f"assignment {assignment_id} is not in the queue of {who.name!r}; answer only "
            "items served to you"
        )
    return a
