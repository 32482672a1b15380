"""Scripted raters: a study rated end to end through the service layer."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from argon2 import PasswordHasher
from sqlalchemy import func, select

from studyhub.demo.raters import LatentModel, RaterProfile, simulate_ratings
from studyhub.errors import InputError, LifecycleError
from studyhub.protocol import load_study
from studyhub.rating import accounts, monitor_summary, progress
from studyhub.rating.accounts import attempt_key
from studyhub.rating.answers import validate_answers, validate_cue_marks
from studyhub.rating.sso import link_sso
from studyhub.store.db import Store, open_store
from studyhub.store.models import (
    Arm,
    Assignment,
    AuditEvent,
    AuthAttempt,
    Case,
    Consent,
    Response,
    Stimulus,
)
from studyhub.store.verify import verify_store
from tests.rating.conftest import STUDY, RatingStudy, build_study

#: Every stimulus read once, a training item first, two attention checks, two repeats.
LAYOUT = (
    [(1, 1, "training", 0, 0)]
    + [(1, 2 + 4 * c + k, "read", c, k) for c in range(3) for k in range(4)]
    + [(1, 14, "catch", 0, 1), (1, 15, "catch", 2, 3)]
    + [(2, 1, "repeat", 0, 0), (2, 2, "repeat", 0, 0)]
)

#: A single-choice and a diagnosis item added to the demo instrument.
EXTRA_ITEMS = """      required: false
    - id: defect
      type: single_choice
      prompt: Which defect does the surface show?
      choices: [crack, scratch, pitting, defect-free surface]
    - id: reading
      type: diagnosis
      prompt: Your own reading of the surface, and how sure you are
"""


@pytest.fixture(autouse=True)
def cheap_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    # Still argon2id, at the lowest cost, as in tests/rating/conftest.py.
    monkeypatch.setattr(
        accounts, "_HASHER", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    )


def _study(
    store: Store,
    protocol: Path,
    *,
    layout: list[tuple[int, int, str, int, int]] = LAYOUT,
    raters: tuple[str, ...] = ("alice", "bob", "carol"),
    extra_items: bool = True,
    **kw: object,
) -> RatingStudy:
    if extra_items and "id: defect" not in protocol.read_text():
        protocol.write_text(protocol.read_text().replace("      required: false\n", EXTRA_ITEMS))
    return build_study(store, protocol, raters=raters, layout=layout, **kw)  # type: ignore[arg-type]


def _responses(store: Store) -> list[Response]:
    with store.session() as s:
        return list(s.scalars(select(Response).order_by(Response.id)))


def _facts(store: Store) -> dict[int, tuple[str, str, str, int | None]]:
    """assignment id -> (kind, arm id, case label, repeat_of_id)."""
    with store.session() as s:
        rows = s.execute(
            select(Assignment.id, Assignment.kind, Arm.arm_key, Case.label, Assignment.repeat_of_id)
            .join(Stimulus, Stimulus.id == Assignment.stimulus_id)
            .join(Arm, Arm.id == Stimulus.arm_id)
            .join(Case, Case.id == Stimulus.case_id)
        )
        return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}


def _current(store: Store) -> dict[int, Response]:
    """assignment id -> the answer in force (the last of its correction chain)."""
    out: dict[int, Response] = {}
    for r in _responses(store):
        out[r.assignment_id] = r  # ids grow along the chain
    return out


def test_every_queue_is_answered_through_the_service_layer(store: Store, demo_copy: Path) -> None:
    rs = _study(store, demo_copy)
    profile = RaterProfile(correction_rate=0.3, free_text_rate=0.5, mark_rate=0.8)
    summary = simulate_ratings(store, STUDY, seed=11, default=profile)
    n_items = len(LAYOUT)
    assert summary.unfinished == [] and len(summary.raters) == 3
    for name in ("alice", "bob", "carol"):
        p = rs.principals[name]
        assert progress(store, p).finished and p.pseudonym in summary.raters
    rows = _responses(store)
    originals = [r for r in rows if r.supersedes_id is None]
    corrections = [r for r in rows if r.supersedes_id is not None]
    assert summary.answers == len(originals) == 3 * n_items
    assert summary.corrections == len(corrections) > 0
    assert all(r.reason and len(r.reason) >= 5 for r in corrections)
    assert summary.marks == sum(len(r.cue_marks["marks"]) for r in originals) > 0
    assert summary.free_texts == sum("comment" in r.answers for r in originals) > 0
    protocol = load_study(demo_copy).protocol
    for r in rows:  # stored answers are what the validator makes of them
        assert validate_answers(r.answers, protocol) == r.answers
        assert validate_cue_marks(r.cue_marks["marks"], protocol) == r.cue_marks["marks"]
        assert set(r.answers) >= {"usefulness", "plausible", "defect", "reading"}
    assert all(r.time_on_task_ms and r.time_on_task_ms >= 300 for r in originals)
    # The monitor's count (the service layer's own check of stored answers) agrees.
    monitor = monitor_summary(store, rs.principals["monica"])
    assert sum(r.catch_failures for r in monitor.raters) == summary.catch_failures
    assert sum(r.catch_items for r in monitor.raters) == summary.catch_items == 3 * 2
    with store.session() as s:
        assert s.scalar(select(func.count(Consent.id))) == 3
        actors = set(s.scalars(select(AuditEvent.actor).where(AuditEvent.action == "response")))
    with store.snapshot() as s:
        report = verify_store(s)
        assert report.ok, report.render()
    assert actors == {rs.principals[n].pseudonym for n in ("alice", "bob", "carol")}


def test_the_same_seed_gives_the_same_answers(
    store: Store, demo_copy: Path, tmp_path: Path
) -> None:
    _study(store, demo_copy)
    simulate_ratings(store, STUDY, seed=5, default=RaterProfile(correction_rate=0.2))
    other = open_store(f"sqlite:///{tmp_path / 'other.db'}")
    try:
        _study(other, demo_copy)
        simulate_ratings(other, STUDY, seed=5, default=RaterProfile(correction_rate=0.2))
        again = [
            (r.assignment_id, r.answers, r.cue_marks, r.time_on_task_ms, r.reason)
            for r in _responses(other)
        ]
        with other.snapshot() as s:
            assert verify_store(s).ok
    finally:
        other.dispose()
    first = [
        (r.assignment_id, r.answers, r.cue_marks, r.time_on_task_ms, r.reason)
        for r in _responses(store)
    ]
    assert first == again


def test_a_different_seed_gives_different_answers(
    store: Store, demo_copy: Path, tmp_path: Path
) -> None:
    _study(store, demo_copy)
    simulate_ratings(store, STUDY, seed=5)
    other = open_store(f"sqlite:///{tmp_path / 'other.db'}")
    try:
        _study(other, demo_copy)
        simulate_ratings(other, STUDY, seed=6)
        again = [r.answers for r in _responses(other)]
    finally:
        other.dispose()
    assert [r.answers for r in _responses(store)] != again


def test_catch_items_fail_at_about_the_configured_rate(store: Store, demo_copy: Path) -> None:
    layout = [(1, 1, "read", 0, 0)] + [(1, 2 + i, "catch", i % 3, i % 4) for i in range(30)]
    rs = _study(store, demo_copy, layout=layout, extra_items=False)
    rate = 0.3
    summary = simulate_ratings(store, STUDY, seed=3, default=RaterProfile(catch_failure=rate))
    n = 3 * 30
    assert summary.catch_items == n
    # Binomial(90, 0.3): mean 27, SD 4.3; four SDs either side.
    sd = math.sqrt(n * rate * (1 - rate))
    assert abs(summary.catch_failures - n * rate) <= 4 * sd
    monitor = monitor_summary(store, rs.principals["monica"])
    assert sum(r.catch_failures for r in monitor.raters) == summary.catch_failures
    # Passed checks carry exactly the instructed answer (2), failed ones another.
    facts = _facts(store)
    catch_answers = [
        r.answers["usefulness"] for r in _responses(store) if facts[r.assignment_id][0] == "catch"
    ]
    assert len(catch_answers) == n and catch_answers.count(2) == n - summary.catch_failures


@pytest.mark.parametrize(("rate", "failures"), [(0.0, 0), (1.0, 3 * 2)])
def test_catch_failure_probability_zero_and_one(
    store: Store, demo_copy: Path, rate: float, failures: int
) -> None:
    _study(store, demo_copy, extra_items=False)
    summary = simulate_ratings(store, STUDY, seed=1, default=RaterProfile(catch_failure=rate))
    assert summary.catch_failures == failures


def test_arm_effects_and_accuracy_show_in_the_answers(store: Store, demo_copy: Path) -> None:
    rs = _study(store, demo_copy)
    with store.session() as s:
        arms = list(s.scalars(select(Arm.arm_key).order_by(Arm.id)))
    best, worst = arms[0], arms[1]
    summary = simulate_ratings(
        store,
        STUDY,
        seed=2,
        arm_effects={best: 1.5, worst: -1.5},
        accuracy={best: 1.0, worst: 0.0},
        default=RaterProfile(correction_rate=0.0, catch_failure=0.0),
    )
    assert summary.unfinished == [] and rs.queue
    facts = _facts(store)
    usefulness: dict[str, list[int]] = defaultdict(list)
    right: dict[str, list[bool]] = defaultdict(list)
    for aid, r in _current(store).items():
        kind, arm, label, _ = facts[aid]
        if kind in ("read", "repeat"):
            usefulness[arm].append(r.answers["usefulness"])
            # the case's label is pit, the single-choice item's option for it "pitting"
            right[arm].append(r.answers["reading"]["label"] == label)
            right[arm].append(r.answers["defect"] == "pitting")
    # 3 units apart on average (1.5 each way), blurred by rounding and the 1..5 bounds.
    assert np.mean(usefulness[best]) - np.mean(usefulness[worst]) > 1.5
    assert all(right[best]) and not any(right[worst])


def test_repeats_are_answered_near_the_first_reading(store: Store, demo_copy: Path) -> None:
    _study(store, demo_copy, extra_items=False)
    simulate_ratings(store, STUDY, seed=9, default=RaterProfile(correction_rate=0.0))
    facts, current = _facts(store), _current(store)
    pairs = [
        (current[first].answers["usefulness"], current[aid].answers["usefulness"])
        for aid, (kind, _, _, first) in facts.items()
        if kind == "repeat" and first is not None
    ]
    assert len(pairs) == 3 * 2
    assert max(abs(a - b) for a, b in pairs) <= 1


def test_misleading_marks_fall_on_the_marker_region_of_a_known_mask(
    store: Store, demo_copy: Path
) -> None:
    _study(store, demo_copy, extra_items=False)
    with store.session() as s:
        keys = list(s.scalars(select(Case.case_key)))
    mask = np.zeros((40, 40), dtype=np.uint8)
    mask[:8, :8] = 4  # the stamp (a marker region in the demo protocol), top left
    mask[20:30, 20:30] = 3  # a pit
    summary = simulate_ratings(
        store,
        STUDY,
        seed=4,
        masks={k: mask for k in keys},
        default=RaterProfile(mark_rate=1.0, misleading_rate=1.0),
    )
    # Corrections keep the marks of the answer they correct: count originals.
    originals = [r for r in _responses(store) if r.supersedes_id is None]
    marks = [m for r in originals for m in r.cue_marks["marks"]]
    assert len(marks) == summary.marks > 0
    misleading = [m for m in marks if m["tag"] == "misleading"]
    right = [m for m in marks if m["tag"] == "correct"]
    assert misleading and right
    assert all(m["x"] < 8 / 40 and m["y"] < 8 / 40 for m in misleading)
    assert all(0.5 <= m["x"] < 0.75 and 0.5 <= m["y"] < 0.75 for m in right)


def test_raters_sign_in_by_single_sign_on_or_token(store: Store, demo_copy: Path) -> None:
    rs = _study(store, demo_copy, extra_items=False)
    link_sso(store, STUDY, "alice", "alice@clinic.example", actor="lead")
    with store.session() as s:
        before = set(s.scalars(select(AuthAttempt.id)))
    summary = simulate_ratings(store, STUDY, seed=1, tokens={"bob": rs.tokens["bob"]})
    assert summary.unfinished == []
    with store.session() as s:
        rows = [(a.key, a.ok) for a in s.scalars(select(AuthAttempt)) if a.id not in before]
    new = dict(rows)
    # alice signed in by single sign-on, bob with his token (both succeeded); carol,
    # with neither, from her account row (no sign-in record).
    assert new[attempt_key("sso", "alice@clinic.example")] is True
    assert new[attempt_key("hint", rs.tokens["bob"].partition(".")[0])] is True
    # sso + client for alice; pair + client + hint for bob; all marked successful.
    assert all(ok for _, ok in rows) and len(rows) == 2 + 3


def _nothing_written(store: Store, before: tuple[int, int]) -> None:
    with store.session() as s:
        assert (
            s.scalar(select(func.count(AuditEvent.seq))),
            s.scalar(select(func.count(Response.id))),
        ) == before


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"seed": -1}, "seed is -1; give a whole number from 0 up"),
        ({"seed": 1, "arm_effects": {"nope": 1.0}}, "arm_effects names arms ['nope'], which the"),
        ({"seed": 1, "accuracy": {"nope": 0.5}}, "accuracy names arms ['nope']"),
        (
            {"seed": 1, "default": RaterProfile(catch_failure=1.5)},
            "default profile: catch_failure is 1.5; give a probability from 0 to 1",
        ),
        (
            {"seed": 1, "profiles": {"zed": RaterProfile()}},
            "profiles name accounts ['zed'], which study 'inspection_demo' does not have",
        ),
        (
            {"seed": 1, "default": RaterProfile(median_ms=0)},
            "default profile: median_ms is 0; give the median time per item",
        ),
        ({"seed": 1, "base_accuracy": -0.1}, "base_accuracy is -0.1; give a probability"),
    ],
)
def test_bad_settings_are_refused_before_anything_is_written(
    store: Store, demo_copy: Path, kwargs: dict[str, object], message: str
) -> None:
    _study(store, demo_copy, extra_items=False, consented=False)
    with store.session() as s:
        before = (s.scalar(select(func.count(AuditEvent.seq))), 0)
    with pytest.raises(InputError) as err:
        simulate_ratings(store, STUDY, **kwargs)  # type: ignore[arg-type]
    assert message in str(err.value)
    _nothing_written(store, before)  # not even a consent


def test_a_study_not_in_rating_is_refused(store: Store, demo_copy: Path) -> None:
    _study(store, demo_copy, extra_items=False, state="enrolling", consented=False)
    with pytest.raises(LifecycleError) as err:
        simulate_ratings(store, STUDY, seed=1)
    assert "cannot rate: study 'inspection_demo' is enrolling" in str(err.value)
    assert "studyhub assign" in str(err.value)


def test_the_latent_model_without_noise_rates_a_rater_consistently(
    store: Store, demo_copy: Path
) -> None:
    _study(store, demo_copy, extra_items=False)
    flat = LatentModel(
        rater_sd=0.0, case_sd=0.0, rater_arm_sd=0.0, case_arm_sd=0.0, noise_sd=0.0, repeat_sd=0.0
    )
    simulate_ratings(store, STUDY, seed=1, model=flat, default=RaterProfile(correction_rate=0.0))
    facts = _facts(store)
    values = {
        r.answers["usefulness"] for aid, r in _current(store).items() if facts[aid][0] != "catch"
    }
    assert values == {3}  # the scale's midpoint: no effect moved anyone


def test_demo_cases_get_misleading_marks_on_their_stamp(store: Store, demo_copy: Path) -> None:
    from studyhub.demo.synth import STAMP_LABEL, generate
    from studyhub.store.audit import append_event

    stamped = next(c for c in generate(12, split="test", seed=0) if c.metadata["stamp"])
    _study(store, demo_copy, extra_items=False, layout=[(1, 1, "read", 0, 0)])
    with store.write() as s:  # the study's first case becomes that demo case
        case = s.scalars(select(Case).order_by(Case.id)).first()
        assert case is not None
        case.case_key = stamped.case_id
        append_event(s, actor="lead", action="test_setup", study_id=STUDY)
    summary = simulate_ratings(
        store, STUDY, seed=2, default=RaterProfile(mark_rate=1.0, misleading_rate=1.0)
    )
    h, w = stamped.mask.shape
    misleading = [
        m for r in _responses(store) for m in r.cue_marks["marks"] if m["tag"] == "misleading"
    ]
    assert len(misleading) == len(summary.raters) == 3
    for m in misleading:  # each on a stamp pixel of the regenerated mask
        assert stamped.mask[int(m["y"] * h), int(m["x"] * w)] == STAMP_LABEL
