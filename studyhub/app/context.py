"""What every page shares: the app's configuration, the cached store, the signed-in person.

The configuration comes from the environment that ``studyhub serve`` sets:
``STUDYHUB_DB`` (the store's URL) and ``STUDYHUB_STUDY`` (the study id). The
store is opened once per URL and shared by every browser session
(``st.cache_resource``); the signed-in :class:`~studyhub.rating.Principal`
lives in the browser session's ``st.session_state`` and nowhere else (the token
itself is not kept).
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass
from typing import Any, Final

import streamlit as st

from studyhub.errors import InputError
from studyhub.rating import Principal
from studyhub.store.db import Store, open_store, resolve_url

__all__ = [
    "DB_ENV",
    "STUDY_ENV",
    "AppConfig",
    "app_config",
    "client_address",
    "current_principal",
    "forget_item",
    "get_store",
    "has_started",
    "item_state",
    "mark_started",
    "set_principal",
    "sign_out",
    "sso_claims",
    "sso_providers",
]

#: Environment variable with the store's URL.
DB_ENV: Final = "STUDYHUB_DB"
#: Environment variable with the study id.
STUDY_ENV: Final = "STUDYHUB_STUDY"

_PRINCIPAL = "principal"
_STARTED = "started"


@dataclass(frozen=True)
class AppConfig:
    """Where the app reads and writes: a store URL and one study."""

    db_url: str
    study_id: str


def app_config() -> AppConfig:
    """Read the configuration from the environment.

    Returns
    -------
    AppConfig

    Raises
    ------
    InputError
        When ``STUDYHUB_STUDY`` is not set (the app was not started by
        ``studyhub serve``).
    """
    study_id = os.environ.get(STUDY_ENV, "").strip()
    if not study_id:
        raise InputError(
            f"{STUDY_ENV} is not set, so the app does not know which study to serve; start it "
            "with: studyhub serve --study STUDY_ID"
        )
    return AppConfig(resolve_url(os.environ.get(DB_ENV)), study_id)


@st.cache_resource(show_spinner=False)
def get_store(url: str) -> Store:
    """The store at ``url``, opened once per server process and shared by all sessions."""
    return open_store(url, create=False)


def client_address() -> str:
    """The browser's address, for sign-in throttling (``""`` when unknown)."""
    try:
        address: Any = st.context.ip_address
    except Exception:  # no request context (bare mode, tests)
        return ""
    return address if isinstance(address, str) else ""


def sso_providers() -> list[str | None]:
    """The single sign-on providers configured in ``[auth]`` of Streamlit's secrets.

    ``[None]`` when ``[auth]`` itself names one provider (``st.login()``), the
    names of its ``[auth.NAME]`` tables otherwise, and ``[]`` when single sign-on
    is not configured (no secrets file, or no ``[auth]`` in it).
    """
    try:
        auth: Any = st.secrets.get("auth")
    except Exception:  # no secrets file at all: single sign-on is simply off
        return []
    if not hasattr(auth, "get"):
        return []
    if auth.get("client_id"):
        return [None]
    return sorted(name for name, value in auth.items() if hasattr(value, "get"))


def sso_claims() -> dict[str, Any] | None:
    """The identity provider's claims when the browser is signed in with ``st.login``."""
    try:
        user = st.user
        if not user.is_logged_in:
            return None
        return dict(user.to_dict())
    except Exception:  # bare mode, tests without a server: no single sign-on
        return None


def current_principal() -> Principal | None:
    """The person signed in to this browser session, if any."""
    found = st.session_state.get(_PRINCIPAL)
    return found if isinstance(found, Principal) else None


def set_principal(principal: Principal) -> None:
    """Remember who signed in (the start page is shown again on every sign-in)."""
    st.session_state[_PRINCIPAL] = principal
    st.session_state[_STARTED] = False


def sign_out() -> None:
    """Forget the signed-in person and everything kept for their items."""
    for key in list(st.session_state.keys()):
        del st.session_state[key]


def has_started() -> bool:
    """Whether the rater passed the start page (instructions, consent) in this browser session."""
    return bool(st.session_state.get(_STARTED))


def mark_started() -> None:
    """Remember that the start page was passed; it is shown again after the next sign-in."""
    st.session_state[_STARTED] = True


def item_state(assignment_id: int) -> dict[str, Any]:
    """What the app keeps for one served item: its idempotency key, when it was shown, marks.

    Created the first time the item is drawn and kept until it is answered, so a
    retried submit reuses the same key (the service then stores nothing twice)
    and time on task counts from the first showing.
    """
    key = f"item:{assignment_id}"
    if key not in st.session_state:
        st.session_state[key] = {
            "idempotency_key": uuid.uuid4().hex,
            "shown_at": time.monotonic(),
            "marks": [],
        }
    state: dict[str, Any] = st.session_state[key]
    return state


def forget_item(assignment_id: int) -> None:
    """Drop what was kept for an answered item."""
    st.session_state.pop(f"item:{assignment_id}", None)
