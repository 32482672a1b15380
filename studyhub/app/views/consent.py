"""The start page: instructions and the consent statement, shown after every sign-in.

Agreement is recorded in the store (once per account and statement); reading
this page serves no item and starts no clock. A rater who agreed before sees
the instructions again and continues with one click.
"""

from __future__ import annotations

import streamlit as st

from studyhub.app.context import mark_started
from studyhub.app.views import done, plain
from studyhub.rating import Principal, ResumeState, consent_page, give_consent
from studyhub.store.db import Store

__all__ = ["show"]


def show(store: Store, principal: Principal) -> None:
    """Draw the instructions and the consent box; open the queue on agreement.

    When nothing is waiting (all done, a washout, an empty queue), that is shown
    instead.

    Parameters
    ----------
    store : Store
        The open store.
    principal : Principal
        The signed-in rater.
    """
    page = consent_page(store, principal)
    prog = page.progress
    if prog.finished or prog.total == 0 or prog.next_session_opens_at is not None:
        done.show(ResumeState(None, prog, page.message))
        return
    st.title("Before you start")
    st.subheader("Instructions")
    st.markdown(plain(page.instructions))
    st.caption(plain(page.message))
    st.subheader("Consent")
    if page.given_at is not None:
        st.write(plain(page.statement))
        st.caption(f"You agreed on {page.given_at:%Y-%m-%d %H:%M} UTC.")
        if st.button("Continue", type="primary", key="start"):
            mark_started()
            st.rerun()
        return
    agreed = st.checkbox(page.statement, key="consent_box")
    if st.button("Start rating", type="primary", key="start"):
        if not agreed:
            st.warning("Tick the box above to agree before you start.")
            return
        give_consent(store, principal, page.statement_sha256)
        mark_started()
        st.rerun()
