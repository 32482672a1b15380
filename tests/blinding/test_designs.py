"""Assignment designs, sessions, ordering with a minimum gap, catch and repeat items."""

from __future__ import annotations

import math
from collections import Counter, defaultdict

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from studyhub.blinding import (
    GapImpossibleError,
    StimulusRef,
    allocate_bib,
    allocate_fully_crossed,
    build_plan,
    min_items_needed,
    observed_min_gap,
    order_items,
    round_half_up,
)
from studyhub.errors import InputError
from studyhub.protocol.schema import Instrument, Item, ReadingDesign

ARMS = ["ig", "gradcam", "random_map", "randomized_model"]
INSTRUMENT = Instrument(
    items=[
        Item(
            id="usefulness",
            type="likert",
            prompt="How useful is the highlight?",
            scale_min=1,
            scale_max=5,
            anchors={1: "not useful at all", 5: "very useful"},
        )
    ]
)


def stimuli(n_cases: int, arms: list[str] = ARMS) -> list[StimulusRef]:
    return [
        StimulusRef(c * len(arms) + a + 1, c + 1, arm)
        for c in range(n_cases)
        for a, arm in enumerate(arms)
    ]


def reading(**kw: object) -> ReadingDesign:
    return ReadingDesign.model_validate(kw)


def test_fully_crossed_every_rater_reads_every_stimulus() -> None:
    stims = stimuli(5)
    alloc = allocate_fully_crossed(stims, [1, 2, 3])
    assert all(sorted(v) == sorted(stims) for v in alloc.values())
    plan = build_plan(
        stims,
        [1, 2, 3],
        reading(sessions=4, catch_rate=0, repeat_rate=0, training_items=0),
        INSTRUMENT,
        7,
    )
    for rp in plan.raters:
        reads = [i.stimulus_id for s in rp.sessions for i in s if i.kind == "read"]
        assert sorted(reads) == [s.id for s in stims]
        # four sessions for four arms: every session shows a case at most once
        for s in rp.sessions:
            assert len({i.case_id for i in s}) == len(s)
    assert plan.notes == []


@pytest.mark.parametrize(("n_cases", "n_raters", "k"), [(12, 6, 3), (10, 7, 2), (9, 4, 3)])
def test_bib_k_raters_per_stimulus_and_arms_balanced(n_cases: int, n_raters: int, k: int) -> None:
    stims = stimuli(n_cases)
    raters = list(range(1, n_raters + 1))
    alloc = allocate_bib(stims, raters, k, np.random.default_rng(1))
    readers: dict[int, set[int]] = defaultdict(set)
    for r, got in alloc.items():
        for s in got:
            readers[s.id].add(r)
    assert all(len(readers[s.id]) == k for s in stims)
    for got in alloc.values():
        per_arm = Counter(s.arm for s in got)
        counts = [per_arm.get(a, 0) for a in ARMS]
        assert max(counts) - min(counts) <= 1  # ±1 when n_cases*k is not divisible by raters
        if (n_cases * k) % n_raters == 0:
            assert len(set(counts)) == 1


def test_bib_never_shows_a_case_under_two_arms_in_one_session() -> None:
    # 4 arms x k=3 = 12 slots per case over 6 raters: each rater reads a case twice
    design = reading(design="balanced_incomplete_block", raters_per_stimulus=3, sessions=2)
    plan = build_plan(stimuli(12), list(range(1, 7)), design, INSTRUMENT, 11)
    for rp in plan.raters:
        for s in rp.sessions:
            arms_per_case: dict[int, set[str]] = defaultdict(set)
            for item in s:
                arms_per_case[item.case_id].add(item.arm)
            assert all(len(a) == 1 for a in arms_per_case.values())
        # the other arm of a case comes in another (later) session
        where: dict[int, list[int]] = defaultdict(list)
        for n, s in enumerate(rp.sessions):
            for i in s:
                if i.kind == "read":
                    where[i.case_id].append(n)
        assert max(len(v) for v in where.values()) == 2
        assert all(len(set(v)) == len(v) for v in where.values())


def test_bib_with_too_few_sessions_is_refused_with_the_fix() -> None:
    design = reading(design="balanced_incomplete_block", raters_per_stimulus=3, sessions=1)
    with pytest.raises(
        InputError,
        match=r"under 2 arms but reading.sessions is 1.*raise "
        r"reading.sessions to 2",
    ):
        build_plan(stimuli(12), list(range(1, 7)), design, INSTRUMENT, 11)


def test_bib_needs_k_raters() -> None:
    with pytest.raises(InputError, match="raters_per_stimulus is 3 but only 2 raters"):
        allocate_bib(stimuli(3), [1, 2], 3, np.random.default_rng(0))


def test_fully_crossed_with_fewer_sessions_than_arms_says_so() -> None:
    plan = build_plan(stimuli(8), [1], reading(sessions=2), INSTRUMENT, 3)
    assert any("reads one case under 4 arms but reading.sessions is 2" in n for n in plan.notes)


@settings(max_examples=300, deadline=None)
@given(
    counts=st.lists(st.integers(1, 5), min_size=1, max_size=12),
    min_gap=st.integers(0, 6),
    seed=st.integers(0, 2**32 - 1),
)
def test_order_keeps_the_gap_exactly_when_the_bound_allows(
    counts: list[int], min_gap: int, seed: int
) -> None:
    cases = [c for c, n in enumerate(counts) for _ in range(n)]
    rng = np.random.default_rng(seed)
    if min_items_needed(cases, min_gap) > len(cases):
        with pytest.raises(GapImpossibleError, match=r"lower reading\.min_gap"):
            order_items(cases, min_gap=min_gap, rng=rng)
        return
    order = order_items(cases, min_gap=min_gap, rng=rng)
    assert sorted(order) == list(range(len(cases)))
    gap = observed_min_gap([cases[i] for i in order])
    assert gap is None or gap >= min_gap
    # items of one case keep their input order
    for c in set(cases):
        idx = [i for i in order if cases[i] == c]
        assert idx == sorted(idx)


def test_impossible_gap_message_names_the_numbers() -> None:
    with pytest.raises(GapImpossibleError) as exc:
        order_items([1, 1, 1, 2], min_gap=3, rng=np.random.default_rng(0), label="session 1")
    assert str(exc.value).startswith(
        "session 1 has 4 items and one case appears 3 times in it; reading.min_gap 3 needs "
        "at least 9 items"
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n_cases=st.integers(2, 10),
    n_arms=st.integers(1, 3),
    n_raters=st.integers(2, 6),
    sessions=st.integers(1, 3),
    min_gap=st.integers(0, 3),
    catch_rate=st.sampled_from([0.0, 0.1, 0.25]),
    repeat_rate=st.sampled_from([0.0, 0.1, 0.25]),
    training=st.integers(0, 3),
    bib=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_every_plan_keeps_its_rules(
    n_cases: int,
    n_arms: int,
    n_raters: int,
    sessions: int,
    min_gap: int,
    catch_rate: float,
    repeat_rate: float,
    training: int,
    bib: bool,
    seed: int,
) -> None:
    k = 2 if bib else None
    design = reading(
        design="balanced_incomplete_block" if bib else "fully_crossed",
        raters_per_stimulus=k,
        sessions=sessions,
        min_gap=min_gap,
        catch_rate=catch_rate,
        repeat_rate=repeat_rate,
        training_items=training,
    )
    stims = stimuli(n_cases, ARMS[:n_arms])
    try:
        plan = build_plan(stims, list(range(1, n_raters + 1)), design, INSTRUMENT, seed)
    except InputError as exc:  # an impossible design is refused with a fix, never half-built
        assert "reading." in str(exc)
        return
    for rp in plan.raters:
        keys = {i.key: (n, i) for n, s in enumerate(rp.sessions) for i in s}
        for number, s in enumerate(rp.sessions):
            gap = observed_min_gap([i.case_id for i in s])
            assert gap is None or gap >= min_gap
            kinds = [i.kind for i in s]
            if "training" in kinds:
                assert number == 0 and kinds[: kinds.count("training")] == ["training"] * len(
                    [x for x in kinds if x == "training"]
                )
            reads = kinds.count("read")
            assert kinds.count("catch") == round_half_up(catch_rate * reads)
            for i in s:
                if i.kind == "catch":
                    assert i.expected is not None and 1 <= i.expected["answers"]["usefulness"] <= 5
            if bib:
                arms_per_case: dict[int, set[str]] = defaultdict(set)
                for i in s:
                    arms_per_case[i.case_id].add(i.arm)
                assert all(len(a) == 1 for a in arms_per_case.values())
        reads_total = sum(i.kind == "read" for s in rp.sessions for i in s)
        repeats = [(n, i) for n, s in enumerate(rp.sessions) for i in s if i.kind == "repeat"]
        if not any("repeat items instead of" in note for note in rp.notes):
            assert len(repeats) == round_half_up(repeat_rate * reads_total)
        for n, rep in repeats:
            assert rep.repeat_of is not None
            orig_session, orig = keys[rep.repeat_of]
            assert orig.kind == "read" and orig.stimulus_id == rep.stimulus_id
            assert orig_session <= n
            if orig_session == n:
                s = rp.sessions[n]
                assert s.index(orig) < s.index(rep)


def test_catch_and_repeat_rates_on_the_demo_design() -> None:
    design = reading(sessions=4, catch_rate=0.05, repeat_rate=0.05, training_items=3)
    plan = build_plan(stimuli(40), [1, 2], design, INSTRUMENT, 20261126)
    for rp in plan.raters:
        kinds = Counter(i.kind for s in rp.sessions for i in s)
        assert kinds["read"] == 160
        assert kinds["catch"] == 4 * round_half_up(0.05 * 40)  # per session: 40 reads -> 2
        assert kinds["repeat"] == round_half_up(0.05 * 160) == 8
        assert kinds["training"] == 3
        assert [i.kind for i in rp.sessions[0][:3]] == ["training"] * 3
        # repeats come late: in the second half of their session
        for s in rp.sessions:
            for pos, item in enumerate(s):
                if item.kind == "repeat":
                    assert pos >= math.ceil(len(s) / 2) - 1
        catch = next(i for s in rp.sessions for i in s if i.kind == "catch")
        assert catch.expected is not None
        assert list(catch.expected["answers"]) == ["usefulness"]
        assert catch.expected["prompt"].startswith("Attention check: for this image please answer")


def test_round_half_up() -> None:
    assert [round_half_up(x) for x in (0.4, 0.5, 1.5, 2.5, 2.49)] == [0, 1, 2, 3, 2]


def test_same_seed_same_plan_other_seed_other_plan() -> None:
    design = reading(design="balanced_incomplete_block", raters_per_stimulus=2, sessions=2)
    a = build_plan(stimuli(10), [1, 2, 3, 4], design, INSTRUMENT, 5)
    b = build_plan(stimuli(10), [1, 2, 3, 4], design, INSTRUMENT, 5)
    c = build_plan(stimuli(10), [1, 2, 3, 4], design, INSTRUMENT, 6)
    assert a == b
    assert a != c


def test_adding_a_fully_crossed_rater_leaves_the_others_unchanged() -> None:
    design = reading(sessions=2)
    a = build_plan(stimuli(6), [1, 2], design, INSTRUMENT, 5)
    b = build_plan(stimuli(6), [1, 2, 3], design, INSTRUMENT, 5)
    assert a.raters == b.raters[:2]
