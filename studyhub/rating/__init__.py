"""Rater accounts and the rating service that every front end calls.

:mod:`studyhub.rating.accounts` creates accounts with one-time tokens and signs
people in; :mod:`studyhub.rating.service` serves blinded items and stores
answers; :mod:`studyhub.rating.answers` checks answers against the instrument.
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
from studyhub.rating.service import (
    MonitorSummary,
    Progress,
    RaterSummary,
    ResumeState,
    ServedItem,
    SubmitResult,
    correct,
    monitor_summary,
    next_item,
    progress,
    resume,
    submit,
)

__all__ = [
    "AUTH_FAILED",
    "ROLES",
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
    "correct",
    "list_raters",
    "monitor_summary",
    "next_item",
    "progress",
    "resume",
    "revoke_rater",
    "submit",
]
