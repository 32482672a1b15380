"""The plan's data rules applied to the tidy data: what the analyses keep, and every deviation.

A deviation is anything that departs from the protocol as planned: an attention
check failed, an assigned reading never answered, a case read under another arm
before the washout ended, a rater excluded by the plan's rules. Each is listed
(kind, rater, case, detail), whether or not the rules leave data out, so that a
reader of the evidence package sees all of them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pandas as pd

from studyhub.evidence.export import TidyData
from studyhub.protocol.plan import AnalysisPlan
from studyhub.protocol.schema import Protocol

__all__ = ["Deviation", "RuledData", "apply_rules"]


@dataclass(frozen=True)
class Deviation:
    """One departure from the protocol as planned."""

    kind: str
    rater: str | None
    case: str | None
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "rater": self.rater, "case": self.case, "detail": self.detail}


@dataclass(frozen=True)
class RuledData:
    """The answers the analyses use, the raters excluded and every deviation."""

    answers: pd.DataFrame
    excluded_raters: list[str]
    deviations: list[Deviation]


def _readings(answers: pd.DataFrame) -> pd.DataFrame:
    """One row per answered item served (not per instrument item)."""
    keys = ["rater", "session", "case", "stimulus", "arm", "kind", "answered_at"]
    first = answers.drop_duplicates(keys)
    return first[[*keys, "catch_passed"]]


def apply_rules(data: TidyData, protocol: Protocol, plan: AnalysisPlan) -> RuledData:
    """Apply ``plan.data_rules`` to ``data`` (after unblinding).

    Returns the answers the analyses use: catch items dropped, readings that
    break the washout dropped when the plan says so, the answers of excluded
    raters dropped. Repeat readings are kept (flagged) for intra-rater endpoints.
    """
    rules = plan.data_rules
    deviations: list[Deviation] = []
    readings = _readings(data.answers)
    excluded: dict[str, str] = {}

    catches = readings[readings["kind"] == "catch"]
    failed = catches[catches["catch_passed"].eq(False).fillna(False)]
    for row in failed.itertuples(index=False):
        deviations.append(
            Deviation(
                "catch_failed",
                str(row.rater),
                str(row.case),
                f"attention check in session {row.session} not answered as instructed",
            )
        )
    n_failed = failed.groupby("rater").size()
    if rules.max_catch_failures is not None:
        for rater, n in n_failed.items():
            if n > rules.max_catch_failures:
                excluded[str(rater)] = (
                    f"failed {n} of {int((catches['rater'] == rater).sum())} attention checks "
                    f"(the plan allows {rules.max_catch_failures})"
                )

    reads = readings[readings["kind"] == "read"]
    answered = reads.groupby("rater").size()
    missing = data.missing
    for row in missing.itertuples(index=False):
        deviations.append(
            Deviation(
                "missing_answer",
                str(row.rater),
                str(row.case),
                f"assigned reading {row.stimulus} not answered",
            )
        )
    n_missing = missing.groupby("rater").size() if not missing.empty else pd.Series(dtype=int)
    for rater in sorted(set(answered.index) | set(n_missing.index)):
        done = int(answered.get(rater, 0))
        total = done + int(n_missing.get(rater, 0))
        if total and done / total < rules.min_completion and rater not in excluded:
            excluded[str(rater)] = (
                f"answered {done} of {total} assigned readings ({done / total:.0%}; the plan "
                f"requires {rules.min_completion:.0%})"
            )

    drop_reads = _washout(
        reads, protocol.reading.washout_days, deviations, rules.washout_violations
    )
    for rater, why in sorted(excluded.items()):
        deviations.append(Deviation("rater_excluded", rater, None, why))

    kept = data.answers[~data.answers["catch"].astype(bool)]
    kept = kept[~kept["rater"].isin(list(excluded))]
    if drop_reads:
        key = list(zip(kept["rater"], kept["stimulus"], kept["kind"], strict=True))
        kept = kept[[k not in drop_reads for k in key]]
    return RuledData(kept.reset_index(drop=True), sorted(excluded), deviations)


def _washout(
    reads: pd.DataFrame, days: int, deviations: list[Deviation], action: str
) -> set[tuple[str, str, str]]:
    """Readings of a case under another arm sooner than ``days`` after the previous one."""
    dropped: set[tuple[str, str, str]] = set()
    if days <= 0 or reads.empty:
        return dropped
    window = dt.timedelta(days=days)
    for (rater, case), group in reads.sort_values("answered_at").groupby(["rater", "case"]):
        rows: list[dict[str, Any]] = [
            {str(k): v for k, v in r.items()} for r in group.to_dict("records")
        ]
        for i, row in enumerate(rows):
            earlier = [r for r in rows[:i] if r["arm"] != row["arm"]]
            if not earlier:
                continue
            gap: dt.timedelta = row["answered_at"] - earlier[-1]["answered_at"]
            if gap < window:
                deviations.append(
                    Deviation(
                        "washout_violation",
                        str(rater),
                        str(case),
                        f"read under arm {row['arm']} {gap.total_seconds() / 86400:.2f} days "
                        f"after arm {earlier[-1]['arm']} (washout {days} days; "
                        f"{'reading excluded' if action == 'exclude_reading' else 'kept'})",
                    )
                )
                if action == "exclude_reading":
                    dropped.add((str(rater), str(row["stimulus"]), "read"))
    return dropped
