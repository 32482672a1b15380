"""Consent: the statement a rater agrees to before the first item, recorded in the store.

The statement is the protocol's ``instrument.consent`` (registered, so every
rater of a study agrees to the same words). Agreeing stores a :class:`Consent`
row with the statement's SHA-256 and an audit event; it is asked once per
account and again only when an amendment changes the statement. Reading the
consent page serves nothing and starts no clock.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from studyhub.errors import InputError
from studyhub.rating._common import caller, consent_sha256, require_role
from studyhub.rating.accounts import Principal
from studyhub.rating.progress import Progress, opening_message, progress_in
from studyhub.store.audit import append_event
from studyhub.store.db import Store
from studyhub.store.models import Consent, utcnow

__all__ = ["ConsentPage", "consent_page", "give_consent"]


@dataclass(frozen=True)
class ConsentPage:
    """What the start page shows: instructions, the statement, and where the rater stands.

    Attributes
    ----------
    instructions : str
        The protocol's instructions to raters.
    statement : str
        The consent statement to agree to.
    statement_sha256 : str
        Its SHA-256: what :func:`give_consent` must be sent back, so that the
        agreement is to the words that were shown.
    given_at : datetime or None
        When this account agreed to this statement (None: not yet).
    progress : Progress
        The rater's progress (nothing is served to compute it).
    message : str
        One plain sentence on where the rater stands.
    """

    instructions: str
    statement: str
    statement_sha256: str
    given_at: dt.datetime | None
    progress: Progress
    message: str


def consent_page(store: Store, principal: Principal) -> ConsentPage:
    """The start page's content for a rater; reads only.

    Raises
    ------
    AuthError
        When the account was revoked.
    AccessError
        For monitors and admins (they rate nothing and agree to nothing here).
    """
    with store.session() as s:
        who, protocol = caller(s, principal)
        require_role(who, "rater", doing="open the rating queue")
        digest = consent_sha256(protocol)
        given = s.scalar(
            select(Consent.given_at).where(
                Consent.rater_id == who.rater_id, Consent.statement_sha256 == digest
            )
        )
        prog = progress_in(s, who, utcnow())
    return ConsentPage(
        protocol.instrument.instructions,
        protocol.instrument.consent,
        digest,
        given,
        prog,
        opening_message(prog, None),
    )


def give_consent(store: Store, principal: Principal, statement_sha256: str) -> dt.datetime:
    """Record that the rater agrees to the statement whose SHA-256 is given.

    Idempotent: agreeing again to the same statement returns the first time.

    Parameters
    ----------
    store : Store
        The open store.
    principal : Principal
        The signed-in rater.
    statement_sha256 : str
        ``ConsentPage.statement_sha256`` of the statement shown.

    Returns
    -------
    datetime
        When the agreement was (first) recorded.

    Raises
    ------
    InputError
        When the hash is not the current statement's (the page is stale: an
        amendment changed the statement).
    AuthError, AccessError
        As for :func:`consent_page`.
    """
    for _attempt in range(2):
        try:
            return _record(store, principal, statement_sha256)
        except IntegrityError:
            continue  # a parallel click recorded it; the next pass finds that row
    raise InputError(  # pragma: no cover - the second pass finds the stored row
        "consent is being recorded by another request; reload the page"
    )


def _record(store: Store, principal: Principal, statement_sha256: str) -> dt.datetime:
    with store.write() as s:
        who, protocol = caller(s, principal)
        require_role(who, "rater", doing="agree to the consent statement")
        digest = consent_sha256(protocol)
        if statement_sha256 != digest:
            raise InputError(
                f"consent statement hash {statement_sha256!r} is not the study's current "
                f"statement ({digest[:12]}...); reload the start page and read the statement "
                "shown there"
            )
        given = s.scalar(
            select(Consent.given_at).where(
                Consent.rater_id == who.rater_id, Consent.statement_sha256 == digest
            )
        )
        if given is not None:
            return given
        now = utcnow()
        s.add(
            Consent(study_id=who.id, rater_id=who.rater_id, statement_sha256=digest, given_at=now)
        )
        s.flush()
        append_event(
            s,
            actor=who.pseudonym,
            action="consent",
            study_id=who.id,
            payload={"rater_id": who.rater_id, "statement_sha256": digest},
        )
        return now
