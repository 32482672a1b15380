"""Consent and instructions, shown once per sign-in before the queue."""

from __future__ import annotations

import streamlit as st

from studyhub.app.context import give_consent
from studyhub.app.views import done, plain
from studyhub.rating import Principal, resume
from studyhub.store.db import Store

__all__ = ["CONSENT_TEXT", "show"]

#: What the rater agrees to before the queue opens.
CONSENT_TEXT = (
    "I take part voluntarily. My answers, the time I take per item and the marks I place "
    "are stored under my account name for this study and analysed without my name."
)


def show(store: Store, principal: Principal) -> None:
    """Draw the protocol's instructions and a consent box; start the queue on agreement.

    When nothing is waiting (all done, a washout), that is shown instead.

    Parameters
    ----------
    store : Store
        The open store.
    principal : Principal
        The signed-in rater.
    """
    state = resume(store, principal)
    if state.item is None:
        done.show(state)
        return
    st.title("Before you start")
    st.subheader("Instructions")
    st.markdown(plain(state.item.instrument.instructions))
    st.caption(plain(state.message))
    agreed = st.checkbox(CONSENT_TEXT, key="consent_box")
    if st.button("Start rating", type="primary", key="start"):
        if not agreed:
            st.warning("Tick the box above to agree before you start.")
            return
        give_consent()
        st.rerun()
