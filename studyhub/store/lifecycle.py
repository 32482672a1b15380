"""The study lifecycle and which steps each state allows.

    draft -> registered -> enrolling -> rating -> closed -> analyzed -> packaged
                  \\___ amendments (reason, new hash, audit event) ___/

``draft`` is a protocol file that was never registered: it has no row in the
store. Every other state change goes through :func:`advance`, which writes an
audit event in the same transaction.
"""

from __future__ import annotations

from typing import Any, Final, Protocol

from sqlalchemy.orm import Session

from studyhub.errors import LifecycleError
from studyhub.store.audit import append_event
from studyhub.store.models import Study, utcnow

__all__ = ["ALLOWED", "STATES", "TRANSITIONS", "StudyState", "advance", "require"]

STATES: Final = ("registered", "enrolling", "rating", "closed", "analyzed", "packaged")

#: step -> states in which it may run.
ALLOWED: Final[dict[str, tuple[str, ...]]] = {
    "amend": ("registered", "enrolling", "rating", "closed"),
    "enroll": ("registered", "enrolling"),
    "sample": ("registered", "enrolling"),
    "explain": ("enrolling",),
    "compute metrics": ("enrolling", "rating", "closed"),
    "add raters": ("registered", "enrolling", "rating"),
    "assign": ("enrolling", "rating"),
    "rate": ("rating",),
    "close": ("rating",),
    "analyze": ("closed", "analyzed"),
    "package": ("analyzed", "packaged"),
}

#: state -> states it may move to.
TRANSITIONS: Final[dict[str, tuple[str, ...]]] = {
    "registered": ("enrolling",),
    "enrolling": ("rating",),
    "rating": ("closed",),
    "closed": ("analyzed",),
    "analyzed": ("packaged",),
    "packaged": (),
}


class StudyState(Protocol):
    """What :func:`require` reads: a study row, or any light view of one."""

    @property
    def id(self) -> str: ...

    @property
    def state(self) -> str: ...


def require(study: StudyState, step: str) -> None:
    """Refuse ``step`` unless the study's state allows it."""
    allowed = ALLOWED[step]
    if study.state not in allowed:
        raise LifecycleError(
            f"cannot {step}: study {study.id!r} is {study.state}; {step} is allowed only when "
            f"the study is {' or '.join(allowed)}{_hint(study.state, step)}"
        )


def _hint(state: str, step: str) -> str:
    if state == "registered" and step in ("explain", "rate", "close", "assign"):
        return " (enroll cases first: studyhub sample or studyhub enroll)"
    if state in ("analyzed", "packaged") and step == "amend":
        return " (the study has been unblinded; amendments after unblinding are not allowed)"
    if state == "enrolling" and step in ("rate", "close"):
        return " (assign stimuli to raters first: studyhub assign)"
    if step == "analyze" and state in ("registered", "enrolling", "rating"):
        return " (close the study first: studyhub close)"
    return ""


def advance(
    session: Session,
    study: Study,
    new_state: str,
    *,
    actor: str,
    payload: dict[str, Any] | None = None,
) -> None:
    """Move ``study`` to ``new_state`` and record the transition in the audit log."""
    if new_state == study.state:
        return
    if new_state not in TRANSITIONS.get(study.state, ()):
        raise LifecycleError(
            f"study {study.id!r} cannot go from {study.state} to {new_state}; the lifecycle is "
            + " -> ".join(STATES)
        )
    old = study.state
    study.state = new_state
    study.updated_at = utcnow()
    if new_state == "analyzed":
        study.unblinded_at = study.updated_at
    append_event(
        session,
        actor=actor,
        action="state_change",
        study_id=study.id,
        payload={"from": old, "to": new_state, **(payload or {})},
    )
