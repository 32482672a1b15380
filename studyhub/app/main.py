"""The rater app's entry script: ``streamlit run studyhub/app/main.py`` (``studyhub serve``).

Routes one browser session: sign in (a token, or the site's single sign-on
through ``st.login``, mapped to the same accounts) -> (monitor or admin) the monitor page;
(rater) consent and instructions -> the queue -> all done, or a washout notice.
Errors from the services are shown as they are worded; one that says the
account is no longer valid also signs the person out. When the store itself
fails (locked past its timeout, unreachable, missing, unreadable) the page is
replaced by one plain message (:data:`~studyhub.rating.outage.STORE_UNAVAILABLE`)
and the details go to the server's log, never to the browser.
"""

from __future__ import annotations

import logging

import streamlit as st

from studyhub.app.context import (
    AppConfig,
    app_config,
    current_principal,
    get_store,
    has_started,
    sign_out,
    sso_claims,
)
from studyhub.app.views import consent, monitor, rate, signin
from studyhub.errors import AuthError, StudyhubError
from studyhub.rating.outage import STORE_UNAVAILABLE, store_failed

__all__ = ["main"]

_LOG = logging.getLogger("studyhub.app")


def main() -> None:
    """Draw the page this browser session is on."""
    st.set_page_config(page_title="studyhub rating", layout="wide")
    try:
        config = app_config()
    except StudyhubError as exc:
        st.error(str(exc))
        return
    page = st.empty()
    try:
        with page.container():
            _route(config)
    except Exception as exc:
        if not store_failed(exc):
            raise
        page.empty()  # nothing half drawn stays
        _unavailable(exc)


def _unavailable(exc: BaseException) -> None:
    _LOG.warning("the store failed; the rater was asked to try again", exc_info=exc)
    st.title("Please try again in a minute")
    st.error(STORE_UNAVAILABLE)


def _route(config: AppConfig) -> None:
    try:
        store = get_store(config.db_url)
    except StudyhubError as exc:  # no database file, or it cannot be opened: the same to a rater
        _unavailable(exc)
        return
    principal = current_principal()
    if principal is None:
        claims = sso_claims()
        if claims is not None:
            signin.from_sso(store, config.study_id, claims)
        else:
            signin.show(store, config.study_id)
        return
    with st.sidebar:
        st.write(f"Signed in as {principal.name}")
        if st.button("Sign out", key="sign_out"):
            sign_out()
            if sso_claims() is not None:
                st.logout()  # also forget the identity provider's cookie
            st.rerun()
    try:
        if principal.role != "rater":
            monitor.show(store, principal)
        elif not has_started():
            consent.show(store, principal)
        else:
            rate.show(store, principal)
    except AuthError as exc:
        sign_out()
        st.error(str(exc))
    except StudyhubError as exc:
        if store_failed(exc):
            raise
        st.error(str(exc))


if __name__ == "__main__":
    main()
