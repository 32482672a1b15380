"""The sign-in page: one token field; a failure shows the service's message, unchanged."""

from __future__ import annotations

import streamlit as st

from studyhub.app.context import client_address, set_principal
from studyhub.errors import StudyhubError
from studyhub.rating import authenticate
from studyhub.store.db import Store

__all__ = ["show"]


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
    st.write("Paste the access token you received from the study lead.")
    with st.form("signin", clear_on_submit=True):
        token = st.text_input("Access token", type="password")
        clicked = st.form_submit_button("Sign in", type="primary")
    if not clicked:
        return
    try:
        principal = authenticate(store, study_id, token, client=client_address())
    except StudyhubError as exc:
        st.error(str(exc))
        return
    set_principal(principal)
    st.rerun()
