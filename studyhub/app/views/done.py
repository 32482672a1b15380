"""The page shown when no item is waiting: all done, a washout, or an empty queue."""

from __future__ import annotations

import streamlit as st

from studyhub.app.views import plain
from studyhub.rating import ResumeState

__all__ = ["show"]


def show(state: ResumeState) -> None:
    """Say why there is nothing to rate, in the service's words.

    Parameters
    ----------
    state : ResumeState
        What :func:`studyhub.rating.resume` returned (its ``item`` is None).
    """
    prog = state.progress
    if prog.finished:
        st.title("All done")
        st.progress(1.0, text=f"{prog.done} of {prog.total} items done")
        st.success(plain(state.message))
        st.write("Your answers are saved. You can close this page.")
    elif prog.next_session_opens_at is not None:
        st.title("Next session not open yet")
        if prog.total:
            st.progress(prog.done / prog.total, text=f"{prog.done} of {prog.total} items done")
        st.info(plain(state.message))
        st.write(
            "The pause between sessions (washout) is part of the study design. Your answers "
            "so far are saved; sign in again once the session opens."
        )
    else:
        st.title("Nothing to rate")
        st.info(plain(state.message))
