"""A rater's full reading plan: training, reads, catch and repeat items, in order.

Built from the allocation and session split of :mod:`studyhub.blinding.designs`
and ordered by :mod:`studyhub.blinding.ordering`. Pure: no database.

Item kinds (``Assignment.kind``)
    ``training``
        ``training_items`` practice stimuli, first in session 1, never analysed.
        Drawn, in this order of preference, from cases the rater does not read in
        session 1, then from stimuli the rater reads in session 1 (the same
        stimulus, so no case is shown under two arms in one session), then (fully
        crossed only) any stimulus; one per case.
    ``read``
        The design's readings: the data of the study.
    ``catch``
        Attention checks: a stimulus the rater reads in the same session, served
        again with an instruction. ``expected`` is
        ``{"answers": {<instrument item id>: <the answer asked for>},
        "prompt": <the instruction the app shows>}`` (the form
        :func:`studyhub.rating.monitor_summary` scores), e.g. ``{"answers":
        {"usefulness": 5}, "prompt": "Attention check: for this image please
        answer 'very useful' (5) to: How useful is ..."}``. The first
        likert item is used (a random value of its scale), else the first yes_no
        item (``"yes"``/``"no"``). Per session
        ``round_half_up(catch_rate * reads in the session)`` catch items.
    ``repeat``
        Intra-rater reliability: a read stimulus served again; ``repeat_of`` is
        the key (``repeat_of_id`` in the store) of its first reading.
        ``round_half_up(repeat_rate * reads)`` per rater. With several sessions a
        repeat goes to the latest later session in which the rater has no other
        item of that case; when there is none (BIB) or with one session, to the
        same session after the original; a fully crossed design whose every
        session holds the case uses the last session. Repeats are released only
        in the second half of their session ("late"). When too few readings
        qualify, fewer repeats are planned and a note says so.

Every random choice uses the rater's own generator
(``rng_for(seed, RATER_STREAM, rater_id)``), so a rater's plan depends only on
the protocol seed, the rater's id, the stimuli and (BIB) the batch's
allocation: the same inputs always give the same plan, and adding a rater
later leaves the others' plans unchanged.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from studyhub.blinding.designs import (
    ALLOCATION_STREAM,
    RATER_STREAM,
    StimulusRef,
    allocate,
    rng_for,
    split_sessions,
)
from studyhub.blinding.ordering import order_items
from studyhub.errors import InputError
from studyhub.protocol.schema import Instrument, ReadingDesign

__all__ = [
    "KINDS",
    "Plan",
    "PlannedItem",
    "RaterPlan",
    "build_plan",
    "catch_expectation",
    "plan_rater",
    "round_half_up",
]

#: Values of ``Assignment.kind``.
KINDS = ("training", "read", "catch", "repeat")


@dataclass(frozen=True)
class PlannedItem:
    """One item of a rater's queue; ``key`` is unique within the rater's plan."""

    key: int
    stimulus_id: int
    case_id: int
    arm: str
    kind: str
    repeat_of: int | None = None
    expected: dict[str, Any] | None = None


@dataclass(frozen=True)
class RaterPlan:
    """One rater's sessions (``sessions[0]`` is session 1), items in serving order."""

    rater_id: int
    sessions: list[list[PlannedItem]]
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Plan:
    """The plans of a batch of raters assigned together."""

    raters: list[RaterPlan]
    notes: list[str] = field(default_factory=list)


def round_half_up(x: float) -> int:
    """Round to the nearest integer, halves up (0.5 -> 1, 2.5 -> 3)."""
    return math.floor(x + 0.5 + 1e-9)


def catch_expectation(instrument: Instrument, rng: np.random.Generator) -> dict[str, Any]:
    """The ``expected`` answer and instruction of one catch item.

    Raises
    ------
    InputError
        When the instrument has no likert or yes_no item to ask about.
    """
    for item in instrument.items:
        if item.type == "likert" and item.scale_min is not None and item.scale_max is not None:
            value = int(rng.integers(item.scale_min, item.scale_max + 1))
            words = item.anchors.get(value)
            answer = f"'{words}' ({value})" if words else f"{value}"
            return {
                "answers": {item.id: value},
                "prompt": f"Attention check: for this image please answer {answer} to: "
                f"{item.prompt}",
            }
    for item in instrument.items:
        if item.type == "yes_no":
            value_yn = "yes" if rng.random() < 0.5 else "no"
            return {
                "answers": {item.id: value_yn},
                "prompt": f"Attention check: for this image please answer '{value_yn}' to: "
                f"{item.prompt}",
            }
    raise InputError(
        "reading.catch_rate is above 0 but the instrument has no likert or yes_no item to "
        "ask an attention check with; add one or set reading.catch_rate: 0"
    )


def _training(
    sessions: list[list[StimulusRef]],
    all_stimuli: Sequence[StimulusRef],
    n: int,
    rng: np.random.Generator,
    *,
    strict: bool,
) -> list[StimulusRef]:
    first = {s.case_id for s in sessions[0]} if sessions else set()
    pools: list[list[StimulusRef]] = [
        [s for s in all_stimuli if s.case_id not in first],
        list(sessions[0]) if sessions else [],
    ]
    if not strict:
        pools.append(list(all_stimuli))
    picked: list[StimulusRef] = []
    used: set[int] = set()
    for pool in pools:
        for i in rng.permutation(len(pool)):
            stim = pool[int(i)]
            if len(picked) == n:
                return picked
            if stim.case_id not in used:
                picked.append(stim)
                used.add(stim.case_id)
    return picked


def plan_rater(
    rater_id: int,
    reads: Sequence[StimulusRef],
    all_stimuli: Sequence[StimulusRef],
    reading: ReadingDesign,
    instrument: Instrument,
    seed: int,
    *,
    shuffle: bool = True,
) -> RaterPlan:
    """One rater's plan from the stimuli the design gave them.

    Parameters
    ----------
    rater_id
        The rater's id (part of the rater's random stream).
    reads
        The rater's allocated stimuli.
    all_stimuli
        Every stimulus of the study (training items may come from any).
    reading, instrument
        The registered protocol's reading design and instrument.
    seed
        The protocol seed.
    shuffle
        ``blinding.shuffle``; when false every rater gets the same random order
        stream (one fixed order), else each rater their own.
    """
    strict = reading.design == "balanced_incomplete_block"
    rng = rng_for(seed, RATER_STREAM, rater_id if shuffle else 0)
    label = f"rater {rater_id}"
    split, notes = split_sessions(reads, reading.sessions, rng, strict=strict, label=label)
    training = _training(split, sorted(all_stimuli), reading.training_items, rng, strict=strict)
    if len(training) < reading.training_items:
        notes.append(
            f"{label}: {len(training)} training items instead of {reading.training_items} "
            "(not enough distinct cases qualify)"
        )
    keys = iter(range(1, 10**9))
    read_items = [
        [PlannedItem(next(keys), s.id, s.case_id, s.arm, "read") for s in sess] for sess in split
    ]
    extra: list[list[PlannedItem]] = [[] for _ in split]
    for idx, sess in enumerate(read_items):
        n_catch = round_half_up(reading.catch_rate * len(sess))
        counts = Counter(it.case_id for it in sess)
        jitter = rng.random(len(sess))
        ranked = sorted(range(len(sess)), key=lambda i: (counts[sess[i].case_id], jitter[i]))
        for i in ranked[:n_catch]:
            it = sess[i]
            expected = catch_expectation(instrument, rng)
            extra[idx].append(
                PlannedItem(
                    next(keys), it.stimulus_id, it.case_id, it.arm, "catch", expected=expected
                )
            )
    n_reads = sum(len(s) for s in read_items)
    n_repeat = round_half_up(reading.repeat_rate * n_reads)
    candidates: list[tuple[PlannedItem, int, int]] = []
    last = len(read_items) - 1
    for idx, sess in enumerate(read_items):
        for it in sess:
            later = [
                t
                for t in range(idx + 1, last + 1)
                if all(o.case_id != it.case_id for o in read_items[t])
            ]
            if later:
                target = max(later)
            elif not strict and idx < last:
                target = last
            else:
                target = idx
            candidates.append((it, idx, target))
    shuffled = [candidates[int(i)] for i in rng.permutation(len(candidates))]
    shuffled.sort(key=lambda c: c[1] == c[2])  # a later session first, the same one last
    taken: set[tuple[int, int]] = set()
    n_planned = 0
    for it, _source, target in shuffled:
        if n_planned == n_repeat or (target, it.case_id) in taken:
            continue
        taken.add((target, it.case_id))
        rep = PlannedItem(next(keys), it.stimulus_id, it.case_id, it.arm, "repeat", it.key)
        extra[target].append(rep)
        n_planned += 1
    if n_planned < n_repeat:
        notes.append(
            f"{label}: {n_planned} repeat items instead of {n_repeat} (only {n_planned} "
            "readings can be repeated without breaking the session rules)"
        )
    sessions: list[list[PlannedItem]] = []
    for idx, sess in enumerate(read_items):
        items = sess + extra[idx]
        half = math.ceil(len(items) / 2)
        rel = [half if it.kind == "repeat" else 0 for it in items]
        prefix = [
            PlannedItem(next(keys), s.id, s.case_id, s.arm, "training")
            for s in (training if idx == 0 else [])
        ]
        order = order_items(
            [it.case_id for it in items],
            min_gap=reading.min_gap,
            rng=rng,
            release=rel,
            prefix=[p.case_id for p in prefix],
            label=f"session {idx + 1} of {label}",
        )
        sessions.append(prefix + [items[i] for i in order])
    return RaterPlan(rater_id, sessions, notes)


def build_plan(
    stimuli: Sequence[StimulusRef],
    raters: Sequence[int],
    reading: ReadingDesign,
    instrument: Instrument,
    seed: int,
    *,
    shuffle: bool = True,
) -> Plan:
    """The plans of ``raters``, assigned together as one batch.

    ``Plan.notes`` lists each distinct compromise once (rater ids folded to "a
    rater"); every ``RaterPlan.notes`` keeps its own.

    A BIB allocation covers the batch: each stimulus goes to ``k`` raters of the
    batch. Its random orders come from ``rng_for(seed, ALLOCATION_STREAM,
    min(raters))``.
    """
    if not raters:
        return Plan([], [])
    if not stimuli:
        raise InputError("the study has no stimuli to assign; run studyhub explain first")
    ordered = sorted(raters)
    alloc = allocate(
        stimuli,
        ordered,
        design=reading.design,
        k=reading.raters_per_stimulus,
        rng=rng_for(seed, ALLOCATION_STREAM, ordered[0]),
    )
    plans = [
        plan_rater(r, alloc[r], stimuli, reading, instrument, seed, shuffle=shuffle)
        for r in ordered
    ]
    # one line per distinct note (raters' ids folded), in first-seen order
    folded = [re.sub(r"^rater \d+", "a rater", n) for p in plans for n in p.notes]
    return Plan(plans, list(dict.fromkeys(folded)))
