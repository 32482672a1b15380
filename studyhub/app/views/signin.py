"""The sign-in page: a token field, and the site's single sign-on when it is configured.

A failure shows the service's message, unchanged. Single sign-on (``st.login``)
is offered when Streamlit's secrets hold an ``[auth]`` section; the provider's
identity is then mapped to the account linked to it (:mod:`studyhub.rating.sso`).
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from studyhub.app.context import client_address, set_principal, sso_providers
from studyhub.errors import StudyhubError
from studyhub.rating import authenticate
from studyhub.rating.outage import store_failed
from studyhub.rating.sso import authenticate_sso
from studyhub.store.db import Store

__all__ = ["from_sso", "show"]


def show(store: Store, study_id: str) -> None:
    """Draw the sign-in form; on success remember the person and rerun.

    Parameters
    ----------
    store : Store
        The open store.
    study_id : str
        The study signed in to.
    """
    st.title("Sign in")
    providers = sso_providers()
    if providers:
        st.write("Sign in with your organisation's account:")
        for provider in providers:
            label = "Single sign-on" if provider is None else f"Single sign-on ({provider})"
            if st.button(label, key=f"sso:{provider or ''}", type="primary"):
                st.login(provider)
        st.write("Or paste the access token you received from the study lead.")
    else:
        st.write("Paste the access token you received from the study lead.")
    with st.form("signin", clear_on_submit=True):
        token = st.text_input("Access token", type="password")
        clicked = st.form_submit_button("Sign in", type="secondary" if providers else "primary")
    if not clicked:
        return
    try:
        principal = authenticate(store, study_id, token, client=client_address())
    except StudyhubError as exc:
        if store_failed(exc):
            raise  # the app's plain "try again" page, not the details
        st.error(str(exc))
        return
    set_principal(principal)
    st.rerun()


def from_sso(store: Store, study_id: str, claims: dict[str, Any]) -> None:
    """Map the identity provider's signed-in person to their account, or say why not.

    Parameters
    ----------
    store : Store
        The open store.
    study_id : str
        The study signed in to.
    claims : dict
        ``st.user`` of the signed-in browser.
    """
    try:
        principal = authenticate_sso(store, study_id, claims, client=client_address())
    except StudyhubError as exc:
        if store_failed(exc):
            raise
        st.title("Sign in")
        st.error(str(exc))
        if st.button("Sign out of single sign-on", key="sso_logout"):
            st.logout()
        return
    set_principal(principal)
    st.rerun()
