"""What the rating modules share: the registered protocol, signed-in checks, role checks."""

from __future__ import annotations

import threading

from sqlalchemy.orm import Session

from studyhub.errors import AccessError, AuthError
from studyhub.protocol.schema import Protocol
from studyhub.rating.accounts import AUTH_FAILED, Principal
from studyhub.store.models import Rater, Study

__all__ = ["protocol_of", "require_role", "signed_in"]

_cache: dict[str, Protocol] = {}
_lock = threading.Lock()


def protocol_of(study: Study) -> Protocol:
    """The registered protocol of ``study`` (parsed once per registration hash).

    The same as :func:`studyhub.cases.enroll.registered_protocol`, without
    importing the case and model machinery into every front end.
    """
    key = f"{study.id}:{study.registration_hash}"
    with _lock:
        protocol = _cache.get(key)
    if protocol is None:
        protocol = Protocol.model_validate_json(study.protocol_canonical)
        with _lock:
            _cache[key] = protocol
    return protocol


def signed_in(s: Session, principal: Principal) -> tuple[Rater, Study]:
    """The principal's account and study, re-read: a token revoked since sign-in is refused."""
    rater = s.get(Rater, principal.rater_id)
    if rater is None or rater.revoked_at is not None or rater.study_id != principal.study_id:
        raise AuthError(AUTH_FAILED)
    study = s.get(Study, rater.study_id)
    if study is None:  # pragma: no cover - foreign key
        raise AuthError(AUTH_FAILED)
    return rater, study


def require_role(rater: Rater, *roles: str, doing: str) -> None:
    """Refuse ``doing`` unless the account has one of ``roles``."""
    if rater.role not in roles:
        raise AccessError(
            f"account {rater.name!r} has role {rater.role!r}, which may not {doing}; "
            f"that needs role {' or '.join(roles)}"
        )
