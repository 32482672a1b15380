"""Rater accounts: one-time tokens, salted slow hashes, roles, revocation, throttled sign-in.

A token reads ``<hint>.<secret>``. The hint is a short random public id stored in
``Rater.token_hint`` so that sign-in finds the account without scanning; the
secret (``secrets.token_urlsafe(24)``, 192 bits) is never stored: only an
argon2id hash of the whole token is (``Rater.token_hash``). The token is shown
once, when the account is created.

Sign-in failures are deliberately uninformative: an unknown hint, a wrong secret
and a revoked account all raise the same :class:`~studyhub.errors.AuthError`,
and an unknown hint still costs one argon2 verification so the answer time does
not tell them apart either. Every attempt is recorded as an
:class:`~studyhub.store.models.AuthAttempt`; after :data:`THROTTLE_FAILURES`
failures for the same hint or the same client within :data:`THROTTLE_WINDOW`,
even a correct token is refused until the window has passed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import select
from sqlalchemy.orm import Session

from studyhub.errors import AuthError, InputError
from studyhub.rating.qualifications import check_qualifications, protocol_qualifications
from studyhub.store import lifecycle
from studyhub.store.audit import append_event
from studyhub.store.db import Store
from studyhub.store.models import AuthAttempt, Rater, utcnow
from studyhub.store.studies import get_study

__all__ = [
    "AUTH_FAILED",
    "ROLES",
    "THROTTLE_FAILURES",
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
    "revoke_rater",
    "sso_taken",
]

Role = Literal["rater", "monitor", "admin"]
#: Roles an account may have: raters read their own queue; monitors and admins
#: follow progress without answers or arms.
ROLES: Final[tuple[str, ...]] = ("rater", "monitor", "admin")
#: Failed sign-ins for one hint or one client after which sign-in is refused.
THROTTLE_FAILURES: Final = 5
#: How far back failures count.
THROTTLE_WINDOW: Final = dt.timedelta(minutes=10)
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
# Verified against when the hint is unknown, so that case costs the same time.
_DUMMY_HASH = _HASHER.hash("00000000." + "x" * 32)


@dataclass(frozen=True)
class Principal:
    """Who is signed in: what the service layer needs, and nothing secret.

    Attributes
    ----------
    rater_id : int
        The account's row id.
    name : str
        The account's name (the audit log's actor).
    role : {"rater", "monitor", "admin"}
        What the account may do.
    study_id : str
        The study the account belongs to.
    """

    rater_id: int
    name: str
    role: str
    study_id: str


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
        A unique name within the study (shown to monitors, used in the audit log).
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
        For an unknown role, an empty or taken name, or bad qualifications.
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
    identity = None if sso_identity is None else normalise_identity(sso_identity)
    with store.write() as s:
        study = get_study(s, study_id)
        lifecycle.require(study, "add raters")
        if identity is not None:
            sso_taken(s, study.id, identity)
        values = check_qualifications(
            qualifications or {}, protocol_qualifications(study.protocol_canonical), role=role
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
                "name": name,
                "role": role,
                "hint": hint,
                "sso_identity": identity,
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
                payload={"rater_id": rater.id, "name": rater.name, "hint": rater.token_hint},
            )
        return RaterInfo.of(rater)


def attempt_key(kind: str, value: str) -> str:
    """Attempt keys are hashed: a client address is personal data, a hint is input."""
    return hashlib.sha256(f"{kind}:{value}".encode()).hexdigest()


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


def _throttled_until(s: Session, study_id: str, keys: Sequence[str]) -> dt.datetime | None:
    """When sign-in opens again for ``keys``, or None when it is open now.

    Sign-in is refused while :data:`THROTTLE_FAILURES` failures of one key lie
    within the window; it opens when the most recent of those ages out of it.
    """
    since = utcnow() - THROTTLE_WINDOW
    until: dt.datetime | None = None
    for key in keys:
        oldest_counted = s.scalars(
            select(AuthAttempt.at)
            .where(
                AuthAttempt.study_id == study_id,
                AuthAttempt.key == key,
                AuthAttempt.ok.is_(False),
                AuthAttempt.at > since,
            )
            .order_by(AuthAttempt.at.desc())
            .offset(THROTTLE_FAILURES - 1)
            .limit(1)
        ).first()
        if oldest_counted is not None:
            opens = oldest_counted + THROTTLE_WINDOW
            until = opens if until is None else max(until, opens)
    return until


def authenticate(store: Store, study_id: str, token: str, *, client: str = "") -> Principal:
    """Sign in with a token; record the attempt; throttle repeated failures.

    The attempt is recorded as a failure, and the throttle checked, in one write
    transaction before the (slow) hash is verified, so parallel guesses cannot
    slip past the limit; a verified attempt is then marked successful.

    Parameters
    ----------
    store : Store
        The open store.
    study_id : str
        The study signed in to.
    token : str
        ``<hint>.<secret>`` as printed by ``studyhub rater add``.
    client : str, optional
        Where the attempt comes from (e.g. the remote address); failures are
        throttled per client as well as per hint.

    Returns
    -------
    Principal

    Raises
    ------
    AuthError
        With :data:`AUTH_FAILED` for an unknown hint, a wrong secret or a revoked
        account alike; with a "wait N minutes" message while throttled (then the
        token is not checked at all).
    """
    token = token.strip() if isinstance(token, str) else ""
    match = _TOKEN_RE.match(token)
    hint = match.group(1) if match else token.partition(".")[0][:32]
    keys = [attempt_key("hint", hint)] + ([attempt_key("client", client)] if client else [])
    now = utcnow()
    with store.write() as s:
        until = _throttled_until(s, study_id, keys)
        if until is not None:
            # Recorded, but under their own keys: waiting out the window must work.
            for key in keys:
                s.add(
                    AuthAttempt(
                        study_id=study_id, key=attempt_key("throttled", key), ok=False, at=now
                    )
                )
            rater = None
            attempts: list[AuthAttempt] = []
        else:
            rater = (
                s.scalar(select(Rater).where(Rater.study_id == study_id, Rater.token_hint == hint))
                if match
                else None
            )
            attempts = [AuthAttempt(study_id=study_id, key=k, ok=False, at=now) for k in keys]
            s.add_all(attempts)
            s.flush()
    if until is not None:
        minutes = max(1, math.ceil((until - now).total_seconds() / 60))
        raise AuthError(
            "sign-in refused: too many failed attempts with this token or from this device; "
            f"wait {minutes} minute{'s' if minutes != 1 else ''} (until "
            f"{until.strftime('%H:%M')} UTC) and try again"
        )
    verified = _verify(rater.token_hash if rater is not None else _DUMMY_HASH, token)
    if not verified or rater is None or rater.revoked_at is not None:
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
