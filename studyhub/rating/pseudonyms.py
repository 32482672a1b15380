"""Pseudonymous audit actors: accounts are ``role-id`` in the audit log, never their names.

Everything an account does in the app (consent, serving, answers, corrections)
is written to the audit log with the account's pseudonym as actor
(``rater-12``, ``monitor-3``), and no event payload carries an account's name,
token, token hint or single sign-on e-mail address: payloads name accounts by
row id and pseudonym only. The row digests an event binds still prove the
account row itself, so the audit chain can go into an evidence package whole
and be verified there without revealing who rated.

:func:`identity_leaks` finds the events of a study that do name an account
(written by a studyhub from before this rule): the evidence package refuses
such a study.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from studyhub.store.models import AuditEvent, Rater

__all__ = ["PSEUDONYM_RE", "identity_leaks", "pseudonym"]

#: What a pseudonym looks like; account names of this shape are refused.
PSEUDONYM_RE: Final = re.compile(r"^(rater|monitor|admin)(-\d+)?$", re.IGNORECASE)
_EMAIL_RE: Final = re.compile(r"[^@\s\"']+@[^@\s\"']+\.[^@\s\"']+")


def pseudonym(role: str, rater_id: int) -> str:
    """The name an account has in the audit log and in everything exported: ``role-id``.

    Parameters
    ----------
    role : str
        The account's role (``rater``, ``monitor`` or ``admin``).
    rater_id : int
        The account's row id (``Rater.id``).

    Returns
    -------
    str
        E.g. ``"rater-12"`` or ``"monitor-3"``.
    """
    return f"{role}-{rater_id}"


def _strings(value: Any) -> Iterator[str]:
    """Every string value in a decoded JSON document (keys are studyhub's, not people's)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _word(text: str) -> re.Pattern[str]:
    """``text`` as a whole word, case-insensitive: ``al`` is not found in ``alpha``."""
    return re.compile(rf"(?<!\w){re.escape(text)}(?!\w)", re.IGNORECASE)


def identity_leaks(session: Session, study_id: str) -> list[str]:
    """Audit events of a study whose actor or payload names an account.

    An event leaks when its actor, or any string in its payload, contains (as
    a whole word, ignoring case) the name, token hint or single sign-on
    address of any account of the study (revoked ones included), or any
    e-mail address at all (an address an account was once linked to is no
    longer in its row). Pseudonyms (``rater-12``) are not names.

    Parameters
    ----------
    session : Session
        A session of the store (read only).
    study_id : str
        The study.

    Returns
    -------
    list of str
        One line per leaking event, in chain order, naming the event, its
        action, where the identity is (actor or payload), what kind it is and
        the pseudonym of the account it belongs to; never the identity itself.
        Empty when the audit log names accounts by pseudonym only.
    """
    secrets: list[tuple[re.Pattern[str], str]] = []
    for r in session.scalars(select(Rater).where(Rater.study_id == study_id).order_by(Rater.id)):
        who = pseudonym(r.role, r.id)
        secrets.append((_word(r.name), f"the name of {who}"))
        secrets.append((_word(r.token_hint), f"the token hint of {who}"))
        if r.sso_identity:
            secrets.append((_word(r.sso_identity), f"the single sign-on address of {who}"))
    leaks: list[str] = []
    events = session.execute(
        select(AuditEvent.seq, AuditEvent.actor, AuditEvent.action, AuditEvent.payload)
        .where(AuditEvent.study_id == study_id)
        .order_by(AuditEvent.seq)
    )
    for seq, actor, action, payload in events:
        try:
            texts = list(_strings(json.loads(payload)))
        except ValueError:
            texts = [payload]
        found: list[str] = []
        for where, text in [("actor", actor)] + [("payload", t) for t in texts]:
            if PSEUDONYM_RE.match(text):
                continue
            kinds = [what for pattern, what in secrets if pattern.search(text)]
            if not kinds and _EMAIL_RE.search(text):
                kinds = ["an e-mail address"]
            found += [f"{where} carries {k}" for k in kinds if f"{where} carries {k}" not in found]
        if found:
            leaks.append(f"audit event {seq} ({action}): {'; '.join(found)}")
    return leaks
