"""The plan's data-handling rules: which raters and readings the analyses keep.

Stated before any data, like the endpoints. ``studyhub analyze`` applies them and
lists every rater and reading they touch as a deviation, so that a reader sees
what was left out and why; the export keeps every answer.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from studyhub.protocol._base import Strict

__all__ = ["DataRules"]


class DataRules(Strict):
    """How attention-check failures, incomplete raters, washout violations and gaps count."""

    max_catch_failures: int | None = Field(
        default=None,
        ge=0,
        le=10_000,
        description="a rater who fails more than this many attention checks (catch items) is "
        "excluded from every analysis; null keeps every rater (the failures are listed as "
        "deviations either way)",
    )
    min_completion: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="a rater who answered less than this share of their assigned readings is "
        "excluded from every analysis; 0 keeps every rater",
    )
    washout_violations: Literal["exclude_reading", "keep"] = Field(
        default="exclude_reading",
        description="a reading of a case under another arm sooner than reading.washout_days "
        "after the rater's previous reading of that case: left out of the analyses "
        "(exclude_reading) or kept (keep); listed as deviations either way",
    )
    missing: Literal["available_data"] = Field(
        default="available_data",
        description="missing answers are not imputed: each analysis uses the answers given, "
        "and every assigned reading without an answer is listed as a deviation",
    )
