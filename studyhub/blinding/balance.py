"""The balance table: what each rater reads, per arm, and how often each stimulus is read.

For the study lead only (``studyhub assign --check``): it names arms, so it is
never shown to raters or monitors.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from studyhub.blinding.ordering import observed_min_gap

__all__ = ["ArmBalance", "Balance", "BalanceRow", "ItemRow", "balance"]


@dataclass(frozen=True)
class ItemRow:
    """One (stored or planned) assignment, flattened."""

    rater: str
    status: str
    session: int
    position: int
    kind: str
    case_id: int
    arm: str
    stimulus_id: int


@dataclass(frozen=True)
class BalanceRow:
    """One rater's line of the balance table."""

    rater: str
    status: str
    sessions: int
    reads_per_arm: dict[str, int]
    catch: int
    repeat: int
    training: int
    min_gap: int | None


@dataclass(frozen=True)
class ArmBalance:
    """How often the stimuli of one arm are read (``read`` items only)."""

    arm: str
    stimuli: int
    min_reads: int
    mean_reads: float
    max_reads: int


@dataclass(frozen=True)
class Balance:
    """The balance table: per rater and per arm."""

    arms: list[str]
    raters: list[BalanceRow]
    per_arm: list[ArmBalance]


def balance(items: Iterable[ItemRow], stimuli_per_arm: dict[str, list[int]]) -> Balance:
    """Summarise assignments into the balance table.

    Parameters
    ----------
    items
        Every assignment (stored and planned).
    stimuli_per_arm
        Arm key -> ids of its stimuli (so unread stimuli count as 0 reads).

    Returns
    -------
    Balance
        Per rater: reads per arm, catch/repeat/training counts, sessions, and the
        smallest number of items between two same-case items within a session
        (None when no session holds a case twice). Per arm: reads per stimulus.
    """
    arms = sorted(stimuli_per_arm)
    by_rater: dict[tuple[str, str], list[ItemRow]] = defaultdict(list)
    reads: Counter[int] = Counter()
    for it in items:
        by_rater[(it.rater, it.status)].append(it)
        if it.kind == "read":
            reads[it.stimulus_id] += 1
    rows = []
    for (rater, status), its in sorted(by_rater.items()):
        kinds = Counter(i.kind for i in its)
        per_arm = Counter(i.arm for i in its if i.kind == "read")
        gaps: list[int] = []
        for number in sorted({i.session for i in its}):
            seq = sorted((i for i in its if i.session == number), key=lambda i: i.position)
            gap = observed_min_gap([i.case_id for i in seq])
            if gap is not None:
                gaps.append(gap)
        rows.append(
            BalanceRow(
                rater=rater,
                status=status,
                sessions=len({i.session for i in its}),
                reads_per_arm={a: per_arm.get(a, 0) for a in arms},
                catch=kinds.get("catch", 0),
                repeat=kinds.get("repeat", 0),
                training=kinds.get("training", 0),
                min_gap=min(gaps) if gaps else None,
            )
        )
    per_arm_rows = []
    for arm in arms:
        counts = [reads.get(s, 0) for s in stimuli_per_arm[arm]]
        per_arm_rows.append(
            ArmBalance(
                arm=arm,
                stimuli=len(counts),
                min_reads=min(counts, default=0),
                mean_reads=sum(counts) / len(counts) if counts else 0.0,
                max_reads=max(counts, default=0),
            )
        )
    return Balance(arms, rows, per_arm_rows)
