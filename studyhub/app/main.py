"""The rater app's entry script: ``streamlit run studyhub/app/main.py`` (``studyhub serve``).

Routes one browser session: sign in (a token, or the site's single sign-on
through ``st.login``, mapped to the same accounts) -> (monitor or admin) the monitor page;
(rater) consent and instructions -> the queue -> all done, or a washout notice.
Errors from the services are shown as they are worded; one that says the
account is no longer valid also signs the person out.
"""

from __future__ import annotations

import streamlit as st

from studyhub.app.context import (
    app_config,
    current_principal,
    get_store,
    has_started,
    sign_out,
    sso_claims,
)
from studyhub.app.views import consent, monitor, rate, signin
from studyhub.errors import AuthError, StudyhubError

__all__ = ["main"]


def main() -> None:
    """Draw the page this browser session is on."""
    st.set_page_config(page_title="studyhub rating", layout="wide")
    try:
        config = app_config()
        store = get_store(config.db_url)
    except StudyhubError as exc:
        st.error(str(exc))
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
        st.error(str(exc))


if __name__ == "__main__":
    main()
