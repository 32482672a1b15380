"""Single sign-on: a site's OpenID Connect provider, mapped to studyhub's own accounts.

Streamlit's ``st.login`` signs a person in with the site's identity provider
(OIDC); studyhub then maps the provider's e-mail claim to the account that
``studyhub rater add NAME --sso ADDRESS`` (or ``studyhub rater link``) linked to
that address. Roles, qualifications, revocation, consent and the audit log
are the account's, exactly as with a token: single sign-on only replaces
typing the token. An address with no account, or a revoked account, is
refused with one message that says which address and what to do.

How to configure the app: ``docs/single-sign-on.md``.
"""

from __future__ import annotations

from typing import Any, Final

from sqlalchemy import select

from studyhub.errors import AuthError, InputError
from studyhub.rating.accounts import (
    Principal,
    RaterInfo,
    account_named,
    attempt_key,
    normalise_identity,
    pseudonym,
    sso_taken,
)
from studyhub.store.audit import append_event
from studyhub.store.db import Store
from studyhub.store.models import AuthAttempt, Rater, utcnow
from studyhub.store.studies import get_study

__all__ = ["NO_ACCOUNT", "authenticate_sso", "link_sso"]

#: Refusal for a provider identity with no (live) account in the study.
NO_ACCOUNT: Final = (
    "single sign-on: {identity!r} has no active account in this study; ask the study lead "
    "to link it (studyhub rater link NAME --sso {identity}) or sign in with your token"
)


def link_sso(
    store: Store, study_id: str | None, name: str, identity: str | None, *, actor: str
) -> RaterInfo:
    """Link an account to a single sign-on identity (``None`` removes the link).

    The ``rater_sso_link`` audit event names the account by its pseudonym and
    says whether it was and is linked; the addresses themselves stay in the
    account row (whose digest the event binds), never in the audit log.

    Raises
    ------
    InputError
        For an unknown account, an address that is not e-mail-like, or one
        already linked to another account of the study.
    """
    address = None if identity is None else normalise_identity(identity)
    with store.write() as s:
        study = get_study(s, study_id)
        rater = account_named(s, study.id, name)
        if address is not None:
            sso_taken(s, study.id, address, other_than=rater.id)
        if rater.sso_identity != address:
            append_event(
                s,
                actor=actor,
                action="rater_sso_link",
                study_id=study.id,
                payload={
                    "rater_id": rater.id,
                    "pseudonym": pseudonym(rater.role, rater.id),
                    "was_linked": rater.sso_identity is not None,
                    "linked": address is not None,
                },
            )
            rater.sso_identity = address
        return RaterInfo.of(rater)


def authenticate_sso(store: Store, study_id: str, claims: Any, *, client: str = "") -> Principal:
    """Sign in the person the identity provider vouched for.

    Parameters
    ----------
    store : Store
        The open store.
    study_id : str
        The study signed in to.
    claims : mapping
        The provider's claims about the signed-in person (``st.user``): its
        ``email`` is matched to an account's linked address; an
        ``email_verified`` claim that is false is refused.
    client : str, optional
        Where the sign-in comes from, recorded with the attempt.

    Returns
    -------
    Principal

    Raises
    ------
    AuthError
        When the claims carry no usable e-mail address, the provider says it is
        not verified, or no live account of the study is linked to it.
    """
    email = claims.get("email") if hasattr(claims, "get") else None
    if not isinstance(email, str) or not email.strip():
        raise AuthError(
            "single sign-on: the identity provider sent no e-mail address; ask the site's "
            "administrator to include the 'email' scope, or sign in with your token"
        )
    if claims.get("email_verified") is False:
        raise AuthError(
            f"single sign-on: the identity provider has not verified {email.strip()!r}; "
            "verify the address with the provider, or sign in with your token"
        )
    try:
        address = normalise_identity(email)
    except InputError:
        raise AuthError(NO_ACCOUNT.format(identity=email.strip())) from None
    now = utcnow()
    with store.write() as s:
        rater = s.scalar(
            select(Rater).where(Rater.study_id == study_id, Rater.sso_identity == address)
        )
        ok = rater is not None and rater.revoked_at is None
        s.add(AuthAttempt(study_id=study_id, key=attempt_key("sso", address), ok=ok, at=now))
        if client:
            s.add(AuthAttempt(study_id=study_id, key=attempt_key("client", client), ok=ok, at=now))
    if rater is None or not ok:
        raise AuthError(NO_ACCOUNT.format(identity=address))
    return Principal(rater.id, rater.name, rater.role, rater.study_id)
