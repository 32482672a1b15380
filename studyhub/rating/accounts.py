"""Rater accounts: one-time tokens, salted slow hashes, roles, revocation, throttled sign-in.

A token reads ``<hint>.<secret>``. The hint is a short random public id stored in
``Rater.token_hint`` so that sign-in finds the account without scanning; the
secret (``secrets.token_urlsafe(24)``, 192 bits) is never stored: only an
argon2id hash of the whole token is (``Rater.token_hash``). The token is shown
once, when the account is created.

Sign-in failures are deliberately uninformative: an unknown hint, a wrong secret
and a revoked account all raise the same :class:`~studyhub.errors.AuthError`.
Every attempt is recorded as an :class:`~studyhub.store.models.AuthAttempt`, and
repeated failures back off with growing delays, never a lockout:
:mod:`studyhub.rating.throttle` holds the rules and the threat model. An
attacker's failures cannot stop the holder of the right token, argon2 checks
are capped per process, and a hint that names no account costs no argon2 work
(the refusal only waits about as long as a check would take).
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import select
from sqlalchemy.orm import Session

from studyhub.errors import AuthError, InputError
from studyhub.rating import throttle
from studyhub.rating.pseudonyms import PSEUDONYM_RE, pseudonym
from studyhub.rating.qualifications import check_qualifications
from studyhub.rating.throttle import (
    THROTTLE_WINDOW,
    attempt_key,
    record_attempt,
    refuse_while_backing_off,
    signin_keys,
)
from studyhub.store import lifecycle
from studyhub.store.audit import append_event
from studyhub.store.db import Store
from studyhub.store.models import AuthAttempt, Rater, utcnow
from studyhub.store.studies import get_study, registered_protocol_of

__all__ = [
    "AUTH_FAILED",
    "ROLES",
    "THROTTLE_WINDOW",
    "NewRater",
    "Principal",
    "RaterInfo",
    "account_named",
    "add_rater",
    "attempt_key",
    "authenticate",
    "list_raters",
    "normalise_identity",
    "pseudonym",
    "revoke_rater",
    "sso_taken",
]

Role = Literal["rater", "monitor", "admin"]
#: Roles an account may have: raters read their own queue; monitors and admins
#: follow progress without answers or arms.
ROLES: Final[tuple[str, ...]] = ("rater", "monitor", "admin")
#: The one message for every failed sign-in: it does not say what was wrong.
AUTH_FAILED: Final = (
    "sign-in failed: this token is not valid for this study; check that it was copied "
    "completely, or ask the study lead for a new one"
)

_HINT_BYTES = 4  # 8 hex characters
_TOKEN_RE = re.compile(r"^([0-9a-f]{8})\.([A-Za-z0-9_-]{16,64})$")
_MAX_NAME = 200
_IDENTITY_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")
# argon2id (RFC 9106 second recommended profile: t=3, m=64 MiB, p=4), salted per hash.
_HASHER = PasswordHasher()


@dataclass(frozen=True)
class Principal:
    """Who is signed in: what the service layer needs, and nothing secret.

    Attributes
    ----------
    rater_id : int
        The account's row id.
    name : str
        The account's name (shown to the person; never written to the audit log).
    role : {"rater", "monitor", "admin"}
        What the account may do.
    study_id : str
        The study the account belongs to.
    """

    rater_id: int
    name: str
    role: str
    study_id: str

    @property
    def pseudonym(self) -> str:
        """The account's actor in the audit log (:func:`pseudonym`), e.g. ``rater-12``."""
        return pseudonym(self.role, self.rater_id)


@dataclass(frozen=True)
class NewRater:
    """A new account and its token: the only time the token exists outside the person."""

    rater_id: int
    name: str
    role: str
    hint: str
    token: str


@dataclass(frozen=True)
class RaterInfo:
    """One account as listed: never the token or its hash."""

    name: str
    role: str
    hint: str
    qualifications: dict[str, Any]
    created_at: dt.datetime
    revoked_at: dt.datetime | None
    sso_identity: str | None = None
    #: The account's name in the audit log and the export (``rater-12``).
    pseudonym: str = ""

    @classmethod
    def of(cls, rater: Rater) -> RaterInfo:
        """The listing of an account row."""
        return cls(
            rater.name,
            rater.role,
            rater.token_hint,
            dict(rater.qualifications),
            rater.created_at,
            rater.revoked_at,
            rater.sso_identity,
            pseudonym(rater.role, rater.id),
        )


def normalise_identity(identity: Any) -> str:
    """A single sign-on identity (the provider's e-mail claim) as stored: trimmed, lower case.

    Raises
    ------
    InputError
        When it is not an e-mail-like ``user@domain``.
    """
    text = identity.strip().lower() if isinstance(identity, str) else ""
    if not _IDENTITY_RE.match(text):
        raise InputError(
            f"single sign-on identity {identity!r} is not an e-mail address; give the address "
            "your identity provider signs people in with, e.g. --sso jane.doe@hospital.org"
        )
    return text


def sso_taken(s: Session, study_id: str, identity: str, *, other_than: int | None = None) -> None:
    """Refuse an identity already linked to another account of the study."""
    holder = s.scalar(
        select(Rater.name).where(
            Rater.study_id == study_id,
            Rater.sso_identity == identity,
            Rater.id != (other_than if other_than is not None else -1),
        )
    )
    if holder is not None:
        raise InputError(
            f"single sign-on identity {identity!r} is already linked to account {holder!r}; "
            "one person, one account: revoke that account first or link another identity"
        )


def add_rater(
    store: Store,
    study_id: str | None,
    name: str,
    *,
    role: str,
    qualifications: Mapping[str, str] | None = None,
    sso_identity: str | None = None,
    actor: str,
) -> NewRater:
    """Create an account and return its one-time token.

    Parameters
    ----------
    store : Store
        The open store.
    study_id : str or None
        The study (``None``: the only study in the store).
    name : str
        A unique name within the study (shown to monitors; the audit log names the
        account by its :func:`pseudonym` instead).
    role : {"rater", "monitor", "admin"}
        What the account may do.
    qualifications : mapping, optional
        Qualification id -> value as typed; see
        :func:`~studyhub.rating.qualifications.check_qualifications`.
    sso_identity : str, optional
        The e-mail address the site's identity provider signs this person in
        with (``st.login``); see :mod:`studyhub.rating.sso`.
    actor : str
        Who adds the account, for the audit log.

    Returns
    -------
    NewRater
        Its ``token`` is not stored anywhere: show it once.

    Raises
    ------
    InputError
        For an unknown role, an empty or taken name, a name shaped like a
        pseudonym (``rater``, ``monitor-3``), or bad qualifications.
    LifecycleError
        When the study no longer accepts raters.
    """
    name = name.strip()
    if role not in ROLES:
        raise InputError(f"role is {role!r}; use one of {', '.join(ROLES)}")
    if not name or len(name) > _MAX_NAME:
        raise InputError(
            f"rater name {name!r} must be 1 to {_MAX_NAME} characters; give e.g. a person's "
            "initials or a pseudonym"
        )
    if PSEUDONYM_RE.match(name):
        raise InputError(
            f"rater name {name!r} looks like an audit pseudonym (the audit log calls every "
            "account role-id, e.g. rater-12); give e.g. the person's initials"
        )
    identity = None if sso_identity is None else normalise_identity(sso_identity)
    with store.write() as s:
        study = get_study(s, study_id)
        lifecycle.require(study, "add raters")
        if identity is not None:
            sso_taken(s, study.id, identity)
        values = check_qualifications(
            qualifications or {},
            list(registered_protocol_of(s, study).raters.qualifications),
            role=role,
        )
        taken = s.scalar(select(Rater.id).where(Rater.study_id == study.id, Rater.name == name))
        if taken is not None:
            raise InputError(
                f"study {study.id!r} already has an account named {name!r}; choose another name, "
                f"or revoke it first (studyhub rater revoke {name!r}) and add a new name"
            )
        hints = set(s.scalars(select(Rater.token_hint).where(Rater.study_id == study.id)))
        hint = secrets.token_hex(_HINT_BYTES)
        while hint in hints:
            hint = secrets.token_hex(_HINT_BYTES)
        token = f"{hint}.{secrets.token_urlsafe(24)}"
        rater = Rater(
            study_id=study.id,
            name=name,
            role=role,
            token_hash=_HASHER.hash(token),
            token_hint=hint,
            qualifications=values,
            created_at=utcnow(),
            sso_identity=identity,
        )
        s.add(rater)
        s.flush()
        append_event(
            s,
            actor=actor,
            action="rater_add",
            study_id=study.id,
            payload={
                "rater_id": rater.id,
                "pseudonym": pseudonym(role, rater.id),
                "role": role,
                "sso_linked": identity is not None,
            },
        )
        return NewRater(rater.id, name, role, hint, token)


def list_raters(store: Store, study_id: str | None) -> list[RaterInfo]:
    """Every account of the study, oldest first, without tokens or hashes."""
    with store.session() as s:
        study = get_study(s, study_id)
        rows = s.scalars(select(Rater).where(Rater.study_id == study.id).order_by(Rater.id))
        return [RaterInfo.of(r) for r in rows]


def revoke_rater(store: Store, study_id: str | None, name: str, *, actor: str) -> RaterInfo:
    """Revoke an account: its token is refused from now on. Idempotent.

    Raises
    ------
    InputError
        When the study has no account of that name.
    """
    with store.write() as s:
        study = get_study(s, study_id)
        rater = account_named(s, study.id, name)
        if rater.revoked_at is None:
            rater.revoked_at = utcnow()
            append_event(
                s,
                actor=actor,
                action="rater_revoke",
                study_id=study.id,
                payload={"rater_id": rater.id, "pseudonym": pseudonym(rater.role, rater.id)},
            )
        return RaterInfo.of(rater)


def account_named(s: Session, study_id: str, name: str) -> Rater:
    """The study's account called ``name``.

    Raises
    ------
    InputError
        When there is none (the message lists the study's accounts).
    """
    rater = s.scalar(select(Rater).where(Rater.study_id == study_id, Rater.name == name))
    if rater is None:
        known = list(s.scalars(select(Rater.name).where(Rater.study_id == study_id)))
        raise InputError(
            f"study {study_id!r} has no account named {name!r} (accounts: "
            f"{', '.join(known) or 'none'}); check the name with studyhub rater list"
        )
    return rater


def authenticate(store: Store, study_id: str, token: str, *, client: str = "") -> Principal:
    """Sign in with a token; record the attempt; back off after repeated failures.

    The backoff is checked on a read snapshot first (a refused attempt writes
    nothing), then again in the write transaction that records the attempt as
    a failure before the slow check, so parallel guesses cannot slip past it; a
    verified attempt is then marked successful. The argon2 check runs in one of
    :data:`~studyhub.rating.throttle.SIGNIN_GATE`'s slots. A hint that names no
    account (or a token that is not ``<hint>.<secret>``) is recorded the same
    way but refused without a check, after about the time a check takes; under
    a full gate that refusal still comes after that time while a real check
    would report busy, so timing tells them apart only when the server is
    saturated.

    Parameters
    ----------
    store : Store
        The open store.
    study_id : str
        The study signed in to.
    token : str
        ``<hint>.<secret>`` as printed by ``studyhub rater add``.
    client : str, optional
        Where the attempt comes from (e.g. the remote address); see
        :mod:`studyhub.rating.throttle` for how it is used.

    Returns
    -------
    Principal

    Raises
    ------
    AuthError
        With :data:`AUTH_FAILED` for an unknown hint, a wrong secret or a revoked
        account alike; with a "wait N seconds" message while this client and
        hint back off, and with :data:`~studyhub.rating.throttle.SIGNIN_BUSY`
        when every check slot stays taken (then the token is not checked).
    """
    token = token.strip() if isinstance(token, str) else ""
    match = _TOKEN_RE.match(token)
    hint = match.group(1) if match else token.partition(".")[0][:32]
    keys = signin_keys(hint, client)
    with store.session() as s:
        refuse_while_backing_off(s, study_id, keys, utcnow())
        rater = (
            s.scalar(select(Rater).where(Rater.study_id == study_id, Rater.token_hint == hint))
            if match
            else None
        )
    gate = throttle.SIGNIN_GATE
    if rater is None:
        with store.write() as s:
            now = utcnow()
            refuse_while_backing_off(s, study_id, keys, now)
            record_attempt(s, study_id, keys, now)
        gate.imitate()
        raise AuthError(AUTH_FAILED)
    with gate.slot():
        with store.write() as s:
            now = utcnow()
            refuse_while_backing_off(s, study_id, keys, now)
            attempts = record_attempt(s, study_id, keys, now)
        started = time.perf_counter()
        verified = _verify(rater.token_hash, token)
        gate.observe(time.perf_counter() - started)
    if not verified or rater.revoked_at is not None:
        raise AuthError(AUTH_FAILED)
    with store.write() as s:
        for attempt in attempts:
            s.get_one(AuthAttempt, attempt.id).ok = True
    return Principal(rater.id, rater.name, rater.role, rater.study_id)


def _verify(token_hash: str, token: str) -> bool:
    try:
        return _HASHER.verify(token_hash, token)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
