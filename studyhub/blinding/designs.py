"""Assignment designs: which rater reads which stimulus, and in which session.

Pure functions over plain values (no database), seeded from the protocol seed.

Fully crossed
    Every rater reads every stimulus.

Balanced incomplete block (BIB)
    Each stimulus is read by ``k = raters_per_stimulus`` raters. Construction:
    raters, cases and arms are put in a random order (from the seed); the
    stimulus of case ``i`` under arm ``a`` goes to raters
    ``(i*k + a*k + j) mod R`` for ``j < k``. For a fixed arm the slots
    ``i*k + a*k + j`` are a contiguous run of ``n*k`` integers, so **every rater
    reads every arm equally often, within ±1** (exactly equal when ``R`` divides
    ``n*k``, where ``n`` is the number of cases). For a fixed case the arms take
    ``m*k`` consecutive slots (``m`` arms), so a rater reads one case at most
    ``ceil(m*k / R)`` times: once when ``m*k <= R``.

Sessions
    A rater's readings of one case go to distinct sessions, in increasing session
    order (the same case under another arm always comes in a *later* session),
    choosing the least-loaded sessions so sessions are of near-equal size. A BIB
    design refuses (``InputError``) when a rater would read a case more often
    than there are sessions; a fully crossed design with fewer sessions than arms
    cannot separate them and says so in the plan's notes (each session then holds
    a case at most ``ceil(m / sessions)`` times, kept apart by ``min_gap``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from studyhub.errors import InputError

__all__ = [
    "ALLOCATION_STREAM",
    "RATER_STREAM",
    "StimulusRef",
    "allocate",
    "allocate_bib",
    "allocate_fully_crossed",
    "rng_for",
    "split_sessions",
]

#: Stream tags mixed into the protocol seed, so each random step has its own stream.
ALLOCATION_STREAM = 1
RATER_STREAM = 2


@dataclass(frozen=True, order=True)
class StimulusRef:
    """A stimulus as the designs see it: its id, its case and its arm's key."""

    id: int
    case_id: int
    arm: str


def rng_for(seed: int, stream: int, *key: int) -> np.random.Generator:
    """A numpy Generator for one random step, derived from the protocol seed.

    Parameters
    ----------
    seed
        The protocol seed.
    stream
        :data:`ALLOCATION_STREAM` or :data:`RATER_STREAM`.
    key
        Further integers (a rater id, the first rater of a batch).
    """
    return np.random.default_rng(np.random.SeedSequence([seed, stream, *key]))


def allocate_fully_crossed(
    stimuli: Sequence[StimulusRef], raters: Sequence[int]
) -> dict[int, list[StimulusRef]]:
    """Every rater reads every stimulus."""
    ordered = sorted(stimuli)
    return {r: list(ordered) for r in raters}


def allocate_bib(
    stimuli: Sequence[StimulusRef],
    raters: Sequence[int],
    k: int,
    rng: np.random.Generator,
) -> dict[int, list[StimulusRef]]:
    """Each stimulus to ``k`` distinct raters, arms balanced per rater (±1).

    Parameters
    ----------
    stimuli
        Every stimulus of the study (each case under each arm).
    raters
        Rater ids.
    k
        Raters per stimulus.
    rng
        Generator for the random orders of raters, cases and arms.

    Raises
    ------
    InputError
        When there are fewer raters than ``k``.
    """
    if k > len(raters):
        raise InputError(
            f"reading.raters_per_stimulus is {k} but only {len(raters)} raters are being "
            f"assigned; add raters with studyhub rater add or lower raters_per_stimulus"
        )
    by_case: dict[int, dict[str, StimulusRef]] = defaultdict(dict)
    for s in sorted(stimuli):
        by_case[s.case_id][s.arm] = s
    cases = sorted(by_case)
    arms = sorted({s.arm for s in stimuli})
    perm_raters = [raters[i] for i in rng.permutation(len(raters))]
    perm_cases = [cases[i] for i in rng.permutation(len(cases))]
    perm_arms = [arms[i] for i in rng.permutation(len(arms))]
    n_r = len(perm_raters)
    out: dict[int, list[StimulusRef]] = {r: [] for r in raters}
    for i, case in enumerate(perm_cases):
        for a, arm in enumerate(perm_arms):
            stim = by_case[case].get(arm)
            if stim is None:
                continue
            for j in range(k):
                out[perm_raters[(i * k + a * k + j) % n_r]].append(stim)
    return {r: sorted(v) for r, v in out.items()}


def allocate(
    stimuli: Sequence[StimulusRef],
    raters: Sequence[int],
    *,
    design: str,
    k: int | None,
    rng: np.random.Generator,
) -> dict[int, list[StimulusRef]]:
    """Dispatch to :func:`allocate_fully_crossed` or :func:`allocate_bib`."""
    if design == "fully_crossed":
        return allocate_fully_crossed(stimuli, raters)
    if design == "balanced_incomplete_block":
        if k is None:
            raise InputError(
                "reading.raters_per_stimulus is not set for a balanced_incomplete_block "
                "design; set it (e.g. 3)"
            )
        return allocate_bib(stimuli, raters, k, rng)
    raise InputError(
        f"reading.design {design!r} is unknown; use fully_crossed or balanced_incomplete_block"
    )


def split_sessions(
    reads: Sequence[StimulusRef],
    sessions: int,
    rng: np.random.Generator,
    *,
    strict: bool,
    label: str = "a rater",
) -> tuple[list[list[StimulusRef]], list[str]]:
    """Split one rater's readings into ``sessions`` sessions.

    The readings of one case go to distinct sessions (increasing session order),
    the least-loaded sessions first; cases are placed busiest first, in random
    order among equals.

    Parameters
    ----------
    reads
        The rater's stimuli.
    sessions
        Number of reading sessions.
    rng
        The rater's generator.
    strict
        Refuse (BIB) instead of noting (fully crossed) when a case has more
        readings than there are sessions.
    label
        Who the rater is, for messages.

    Returns
    -------
    (sessions, notes)
        ``sessions[0]`` is session 1 (unordered: ordering is a later step), and
        human-readable notes on any compromise.
    """
    by_case: dict[int, list[StimulusRef]] = defaultdict(list)
    for s in sorted(reads):
        by_case[s.case_id].append(s)
    cases = sorted(by_case)
    jitter = rng.random(len(cases))
    order = sorted(range(len(cases)), key=lambda i: (-len(by_case[cases[i]]), jitter[i]))
    load = [0] * sessions
    out: list[list[StimulusRef]] = [[] for _ in range(sessions)]
    notes: list[str] = []
    worst = 0
    for i in order:
        items = [by_case[cases[i]][j] for j in rng.permutation(len(by_case[cases[i]]))]
        worst = max(worst, len(items))
        slots: list[int] = []
        while len(slots) < len(items):
            free = [s for s in range(sessions) if s not in slots] or list(range(sessions))
            noise = rng.random(sessions)
            pick = min(free, key=lambda s: (load[s], noise[s]))
            slots.append(pick)
            load[pick] += 1
        for item, slot in zip(items, sorted(slots), strict=True):
            out[slot].append(item)
    if worst > sessions:
        if strict:
            raise InputError(
                f"{label} would read one case under {worst} arms but reading.sessions is "
                f"{sessions}, and a balanced_incomplete_block design never shows a case under "
                f"two arms in one session; raise reading.sessions to {worst}, add raters (so "
                "that arms x raters_per_stimulus <= raters x sessions), or lower "
                "reading.raters_per_stimulus"
            )
        notes.append(
            f"{label} reads one case under {worst} arms but reading.sessions is {sessions}, so "
            "some sessions show a case under two arms (kept reading.min_gap apart); set "
            f"reading.sessions to {worst} to separate every arm"
        )
    return out, notes
