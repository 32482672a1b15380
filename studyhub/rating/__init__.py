"""Rater accounts and the rating service that every front end calls.

:mod:`~studyhub.rating.accounts` creates accounts with one-time tokens (or maps
single sign-on identities to them) and signs people in, with the backoff and the
cap on argon2 checks of :mod:`~studyhub.rating.throttle`;
:mod:`~studyhub.rating.consent` records agreement to the consent statement;
:mod:`~studyhub.rating.serve` serves blinded items; :mod:`~studyhub.rating.respond`
stores answers and corrections; :mod:`~studyhub.rating.progress` reports where
raters stand; :mod:`~studyhub.rating.answers` checks answers against the
instrument; :mod:`~studyhub.rating.windowing` re-windows the plain image of a
DICOM item with the protocol's window presets. All are plain functions over a store and a signed-in
:class:`Principal`, used alike by the Streamlit app, the tests and any scripted
rater.
"""

from studyhub.rating.accounts import (
    AUTH_FAILED,
    ROLES,
    NewRater,
    Principal,
    RaterInfo,
    add_rater,
    authenticate,
    list_raters,
    revoke_rater,
)
from studyhub.rating.consent import ConsentPage, consent_page, give_consent
from studyhub.rating.progress import (
    MonitorSummary,
    Progress,
    RaterSummary,
    ResumeState,
    monitor_summary,
    progress,
    resume,
)
from studyhub.rating.respond import SubmitResult, correct, submit
from studyhub.rating.serve import ServedItem, next_item
from studyhub.rating.windowing import window_presets_of, windowed_original

__all__ = [
    "AUTH_FAILED",
    "ROLES",
    "ConsentPage",
    "MonitorSummary",
    "NewRater",
    "Principal",
    "Progress",
    "RaterInfo",
    "RaterSummary",
    "ResumeState",
    "ServedItem",
    "SubmitResult",
    "add_rater",
    "authenticate",
    "consent_page",
    "correct",
    "give_consent",
    "list_raters",
    "monitor_summary",
    "next_item",
    "progress",
    "resume",
    "revoke_rater",
    "submit",
    "window_presets_of",
    "windowed_original",
]
