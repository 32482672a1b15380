"""The rating service: blinding, own-queue access, washout, idempotent atomic answers."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import uuid

import pytest
from sqlalchemy import select

from studyhub.errors import AccessError, AuthError, InputError, LifecycleError
from studyhub.rating import service
from studyhub.rating.accounts import revoke_rater
from studyhub.rating.service import (
    ServedItem,
    correct,
    monitor_summary,
    next_item,
    progress,
    resume,
    submit,
)
from studyhub.store import lifecycle
from studyhub.store.audit import verify_chain
from studyhub.store.models import Assignment, AuditEvent, ReadingSession, Response, Study
from tests.rating.conftest import GOOD, STUDY, RatingStudy


def _key() -> str:
    return uuid.uuid4().hex


def _answer(rs: RatingStudy, name: str, answers=None, **kw):  # type: ignore[no-untyped-def]
    p = rs.principals[name]
    item = next_item(rs.store, p)
    assert item is not None
    kw.setdefault("time_on_task_ms", 4200)
    kw.setdefault("idempotency_key", _key())
    return item, submit(rs.store, p, item.assignment_id, answers or GOOD, **kw)


def _responses(rs: RatingStudy) -> list[Response]:
    with rs.store.session() as s:
        return list(s.scalars(select(Response).order_by(Response.id)))


# --- blinding --------------------------------------------------------------------


FORBIDDEN_FIELDS = ("arm", "method", "model", "case", "label", "provenance", "source", "file")


def test_served_item_fields_name_nothing_unblinding() -> None:
    for f in dataclasses.fields(ServedItem):
        for word in FORBIDDEN_FIELDS:
            if f.name == "diagnosis_labels":  # the classes to choose from, shown by design
                continue
            assert word not in f.name, f.name


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, bytes):
        return []  # checked separately, byte for byte
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [x for f in dataclasses.fields(value) for x in _strings(getattr(value, f.name))]
    if hasattr(value, "model_dump_json"):
        return [value.model_dump_json()]
    return [repr(value)]


def test_served_item_values_carry_no_arm_method_case_key_or_label(rs: RatingStudy) -> None:
    item = next_item(rs.store, rs.principals["alice"])
    assert item is not None
    assert item.image_png.startswith(b"\x89PNG") and item.code.startswith("C0")
    assert item.cue_text == "Model: crack — confident (87%)"
    assert item.narrative is None  # show_narrative is false in the demo protocol
    assert item.training and item.catch_prompt is None
    assert (item.session, item.position, item.total) == (1, 1, 5)
    text = "\n".join(_strings(item))
    for secret in rs.secrets:  # whole words: "ig" is an arm, "highlight" is not
        assert not re.search(rf"(?<![A-Za-z0-9_]){re.escape(secret)}(?![A-Za-z0-9_])", text), secret
    for png in (item.image_png, item.original_png, item.overlay_png):
        assert png is not None
        for secret in rs.secrets:
            assert secret.encode() not in png or len(secret) < 4, secret
    assert "usefulness" in text  # the instrument is there


def test_catch_item_carries_its_prompt_and_a_repeat_does_not_say_so(rs: RatingStudy) -> None:
    items = []
    for _ in range(5):
        item, _r = _answer(rs, "alice", {"usefulness": 2, "plausible": "no"})
        items.append(item)
    assert [i.catch_prompt for i in items] == [
        None,
        None,
        "Please answer 2 for usefulness.",
        None,
        None,
    ]
    assert [i.position for i in items] == [1, 2, 3, 4, 5]
    assert "repeat" not in "\n".join(_strings(items[4]))


# --- roles and own queue ---------------------------------------------------------


def test_rater_cannot_submit_or_correct_another_raters_item(rs: RatingStudy) -> None:
    bobs = rs.queue["bob"][0]
    with pytest.raises(AccessError, match=f"assignment {bobs} is not in the queue of 'alice'"):
        submit(
            rs.store,
            rs.principals["alice"],
            bobs,
            GOOD,
            time_on_task_ms=1,
            idempotency_key=_key(),
        )
    with pytest.raises(AccessError, match="not in the queue of 'alice'"):
        correct(
            rs.store, rs.principals["alice"], bobs, GOOD, reason="typo fix", idempotency_key="k"
        )
    # a nonexistent id reads exactly like someone else's
    with pytest.raises(AccessError, match="assignment 999999 is not in the queue of 'alice'"):
        submit(
            rs.store, rs.principals["alice"], 999999, GOOD, time_on_task_ms=1, idempotency_key="k"
        )
    assert _responses(rs) == []


def test_each_rater_is_served_only_their_own_queue(rs: RatingStudy) -> None:
    a = next_item(rs.store, rs.principals["alice"])
    b = next_item(rs.store, rs.principals["bob"])
    assert a is not None and b is not None
    assert a.assignment_id in rs.queue["alice"] and b.assignment_id in rs.queue["bob"]


def test_monitor_cannot_fetch_or_answer_items_but_sees_the_summary(rs: RatingStudy) -> None:
    monica = rs.principals["monica"]
    with pytest.raises(AccessError, match="role 'monitor', which may not fetch items"):
        next_item(rs.store, monica)
    with pytest.raises(AccessError, match="may not submit answers"):
        submit(rs.store, monica, rs.queue["alice"][0], GOOD, time_on_task_ms=1, idempotency_key="k")
    with pytest.raises(AccessError):
        progress(rs.store, monica)
    _answer(rs, "alice", time_on_task_ms=3000)
    _answer(rs, "alice", time_on_task_ms=5000)
    _answer(rs, "alice", {"usefulness": 5, "plausible": "yes"})  # the catch item, failed
    summary = monitor_summary(rs.store, monica)
    rows = {r.name: r for r in summary.raters}
    assert set(rows) == {"alice", "bob"}
    assert (rows["alice"].done, rows["alice"].total) == (3, 5)
    assert (rows["alice"].catch_items, rows["alice"].catch_failures) == (1, 1)
    assert rows["alice"].median_time_ms == 4200.0
    assert rows["bob"].done == 0 and rows["bob"].median_time_ms is None
    text = repr(summary)
    for secret in rs.secrets | {"usefulness", "plausible"}:
        assert secret not in text
    with pytest.raises(AccessError, match="may not see the monitor summary"):
        monitor_summary(rs.store, rs.principals["alice"])


def test_catch_failure_counts_the_current_answer_after_correction(rs: RatingStudy) -> None:
    for _ in range(2):
        _answer(rs, "alice")
    _item, r = _answer(rs, "alice", {"usefulness": 5, "plausible": "yes"})
    correct(
        rs.store,
        rs.principals["alice"],
        r.assignment_id,
        {"usefulness": 2, "plausible": "yes"},
        reason="misread the instruction",
        idempotency_key=_key(),
    )
    row = {x.name: x for x in monitor_summary(rs.store, rs.principals["monica"]).raters}["alice"]
    assert (row.catch_items, row.catch_failures) == (1, 0)


def test_a_token_revoked_after_sign_in_is_refused(rs: RatingStudy) -> None:
    item = next_item(rs.store, rs.principals["alice"])
    assert item is not None
    revoke_rater(rs.store, STUDY, "alice", actor="lead")
    with pytest.raises(AuthError, match="sign-in failed"):
        next_item(rs.store, rs.principals["alice"])
    with pytest.raises(AuthError, match="sign-in failed"):
        submit(
            rs.store,
            rs.principals["alice"],
            item.assignment_id,
            GOOD,
            time_on_task_ms=1,
            idempotency_key=_key(),
        )
    assert _responses(rs) == []


def test_rating_is_refused_outside_the_rating_state(make_study) -> None:  # type: ignore[no-untyped-def]
    rs = make_study(state="enrolling")
    with pytest.raises(LifecycleError, match="cannot rate: study 'inspection_demo' is enrolling"):
        next_item(rs.store, rs.principals["alice"])
    with pytest.raises(LifecycleError, match="cannot rate"):
        submit(
            rs.store,
            rs.principals["alice"],
            rs.queue["alice"][0],
            GOOD,
            time_on_task_ms=1,
            idempotency_key=_key(),
        )


def test_closing_the_study_stops_submissions(rs: RatingStudy) -> None:
    item = next_item(rs.store, rs.principals["alice"])
    assert item is not None
    with rs.store.write() as s:
        lifecycle.advance(s, s.get_one(Study, STUDY), "closed", actor="lead")
    with pytest.raises(LifecycleError, match="is closed"):
        submit(
            rs.store,
            rs.principals["alice"],
            item.assignment_id,
            GOOD,
            time_on_task_ms=1,
            idempotency_key=_key(),
        )


# --- answers ---------------------------------------------------------------------


def test_submit_stores_one_timestamped_response_with_its_audit_event(rs: RatingStudy) -> None:
    item, result = _answer(
        rs,
        "alice",
        {"usefulness": "4", "plausible": True, "comment": "  edge glare  "},
        cue_marks=[{"x": 0.25, "y": 0.5, "tag": "misleading"}],
        time_on_task_ms=5300,
    )
    assert not result.duplicate and result.submitted_at.tzinfo is not None
    (row,) = _responses(rs)
    assert row.answers == {"usefulness": 4, "plausible": "yes", "comment": "edge glare"}
    assert row.cue_marks == {"marks": [{"x": 0.25, "y": 0.5, "tag": "misleading"}]}
    assert row.time_on_task_ms == 5300 and row.assignment_id == item.assignment_id
    with rs.store.session() as s:
        ev = s.scalars(select(AuditEvent).where(AuditEvent.action == "response")).one()
        assert ev.actor == "alice" and str(row.id) in ev.payload
        assert "edge glare" not in ev.payload  # a digest, not the answers
        assert verify_chain(s).ok
        a = s.get_one(Assignment, item.assignment_id)
        assert a.first_served_at is not None and a.first_served_at <= row.submitted_at


def test_double_submit_with_the_same_key_stores_one_response(rs: RatingStudy) -> None:
    p = rs.principals["alice"]
    item = next_item(rs.store, p)
    assert item is not None
    first = submit(rs.store, p, item.assignment_id, GOOD, time_on_task_ms=10, idempotency_key="dbl")
    again = submit(rs.store, p, item.assignment_id, GOOD, time_on_task_ms=11, idempotency_key="dbl")
    assert again.duplicate and again.response_id == first.response_id
    assert len(_responses(rs)) == 1
    with pytest.raises(InputError, match="idempotency_key was already used for a different answer"):
        submit(
            rs.store,
            p,
            item.assignment_id,
            {"usefulness": 1, "plausible": "no"},
            time_on_task_ms=1,
            idempotency_key="dbl",
        )
    with pytest.raises(InputError, match="is already answered; to change the answer, send a corr"):
        submit(rs.store, p, item.assignment_id, GOOD, time_on_task_ms=1, idempotency_key=_key())
    assert len(_responses(rs)) == 1


def test_idempotency_keys_are_scoped_to_the_rater(rs: RatingStudy) -> None:
    _a, ra = _answer(rs, "alice", idempotency_key="same-key")
    _b, rb = _answer(rs, "bob", idempotency_key="same-key")
    assert not rb.duplicate and ra.response_id != rb.response_id
    assert len(_responses(rs)) == 2


def test_a_crash_inside_the_transaction_leaves_no_response(rs: RatingStudy, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    p = rs.principals["alice"]
    item = next_item(rs.store, p)
    assert item is not None

    def boom(*_a: object, **_k: object) -> None:
        raise RuntimeError("power cut")

    monkeypatch.setattr(service, "append_event", boom)
    with pytest.raises(RuntimeError, match="power cut"):
        submit(rs.store, p, item.assignment_id, GOOD, time_on_task_ms=1, idempotency_key="k1")
    assert _responses(rs) == []
    monkeypatch.undo()
    # the retry with the same key now stores it, once
    result = submit(rs.store, p, item.assignment_id, GOOD, time_on_task_ms=1, idempotency_key="k1")
    assert not result.duplicate and len(_responses(rs)) == 1
    with rs.store.session() as s:
        assert verify_chain(s).ok


def test_an_item_not_yet_served_cannot_be_answered(rs: RatingStudy) -> None:
    later = rs.queue["alice"][2]
    with pytest.raises(InputError, match=f"assignment {later} has not been served yet"):
        submit(
            rs.store, rs.principals["alice"], later, GOOD, time_on_task_ms=1, idempotency_key="k"
        )


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        (
            {"plausible": "yes"},
            "item 'usefulness' is required and has no answer; give a whole number from 1 to 5",
        ),
        (
            {"usefulness": 7, "plausible": "yes"},
            "answer to 'usefulness' is 7; give a whole number from 1 to 5",
        ),
        ({"usefulness": 2.5, "plausible": "yes"}, "answer to 'usefulness' is 2.5"),
        ({"usefulness": True, "plausible": "yes"}, "answer to 'usefulness' is True"),
        (
            {"usefulness": 3, "plausible": "maybe"},
            "answer to 'plausible' is 'maybe'; give yes or no",
        ),
        (
            {"usefulness": 3, "plausible": "yes", "mood": 1},
            "answers name 'mood', which the "
            "instrument does not have \\(its items: usefulness, plausible, comment\\); remove them",
        ),
        (["usefulness", 3], "answers must map item ids to values, got list"),
    ],
)
def test_invalid_answers_are_refused_with_a_message_naming_item_value_and_fix(
    rs: RatingStudy, answers: object, message: str
) -> None:
    p = rs.principals["alice"]
    item = next_item(rs.store, p)
    assert item is not None
    with pytest.raises(InputError, match=message):
        submit(rs.store, p, item.assignment_id, answers, time_on_task_ms=1, idempotency_key="k")  # type: ignore[arg-type]
    assert _responses(rs) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"cue_marks": [{"x": 1.5, "y": 0.2, "tag": "correct"}]},
            "cue mark 1 has x=1.5; give a fraction",
        ),
        ({"cue_marks": [{"x": 0.5, "y": 0.2, "tag": "nice"}]}, "cue mark 1 has tag 'nice'"),
        ({"time_on_task_ms": -5}, "time_on_task_ms is -5"),
        ({"idempotency_key": ""}, "idempotency_key is ''; send a fresh random string"),
    ],
)
def test_invalid_marks_time_and_key_are_refused(rs: RatingStudy, kwargs, message: str) -> None:  # type: ignore[no-untyped-def]
    p = rs.principals["alice"]
    item = next_item(rs.store, p)
    assert item is not None
    args = {"time_on_task_ms": 1, "idempotency_key": "k", **kwargs}
    with pytest.raises(InputError, match=message):
        submit(rs.store, p, item.assignment_id, GOOD, **args)
    assert _responses(rs) == []


# --- corrections -----------------------------------------------------------------


def test_a_correction_supersedes_and_keeps_the_original(rs: RatingStudy) -> None:
    p = rs.principals["alice"]
    _item, first = _answer(rs, "alice", cue_marks=[{"x": 0.1, "y": 0.1, "tag": "correct"}])
    with pytest.raises(InputError, match="say in a few words why"):
        correct(rs.store, p, first.assignment_id, GOOD, reason=" ", idempotency_key="c0")
    fixed = correct(
        rs.store,
        p,
        first.assignment_id,
        {"usefulness": 2, "plausible": "no"},
        reason="clicked the wrong value",
        idempotency_key="c1",
    )
    again = correct(
        rs.store,
        p,
        first.assignment_id,
        {"usefulness": 2, "plausible": "no"},
        reason="clicked the wrong value",
        idempotency_key="c1",
    )
    assert again.duplicate and again.response_id == fixed.response_id
    second = correct(
        rs.store,
        p,
        first.assignment_id,
        {"usefulness": 3, "plausible": "no"},
        reason="second thoughts",
        idempotency_key="c2",
    )
    original, corr1, corr2 = _responses(rs)
    assert original.id == first.response_id and original.answers == GOOD
    assert original.supersedes_id is None and original.reason is None
    assert (corr1.supersedes_id, corr1.reason) == (original.id, "clicked the wrong value")
    assert (corr2.supersedes_id, second.supersedes_id) == (corr1.id, corr1.id)
    assert corr2.cue_marks == original.cue_marks  # kept unless new marks are sent
    assert progress(rs.store, p).done == 1
    with rs.store.session() as s:
        assert verify_chain(s).ok


def test_nothing_to_correct_before_an_answer(rs: RatingStudy) -> None:
    item = next_item(rs.store, rs.principals["alice"])
    assert item is not None
    with pytest.raises(InputError, match="has no answer to correct; submit an answer first"):
        correct(
            rs.store,
            rs.principals["alice"],
            item.assignment_id,
            GOOD,
            reason="a good reason",
            idempotency_key="c",
        )


# --- sessions, washout, progress, resume -----------------------------------------


def test_washout_blocks_the_next_session_until_it_opens(make_study) -> None:  # type: ignore[no-untyped-def]
    rs = make_study(washout_days=14)
    p = rs.principals["alice"]
    for _ in range(3):
        _answer(rs, "alice")
    assert next_item(rs.store, p) is None
    prog = progress(rs.store, p)
    assert (prog.done, prog.total, prog.session, prog.sessions) == (3, 5, 2, 2)
    assert prog.next_session_opens_at is not None
    opens_in = prog.next_session_opens_at - dt.datetime.now(dt.UTC)
    assert dt.timedelta(days=13, hours=23) < opens_in <= dt.timedelta(days=14)
    state = resume(rs.store, p)
    assert state.item is None
    assert state.message.startswith("Session 2 opens at ")
    assert "washout" in state.message and "3 of 5 items done" in state.message
    session2 = rs.queue["alice"][3]
    with pytest.raises(InputError, match="has not been served yet"):
        submit(rs.store, p, session2, GOOD, time_on_task_ms=1, idempotency_key="k")
    # bob's sessions are his own: alice's washout does not touch them
    assert next_item(rs.store, rs.principals["bob"]) is not None
    # once the washout has passed, session 2 is served
    with rs.store.write() as s:
        sess = s.scalars(
            select(ReadingSession).where(
                ReadingSession.rater_id == p.rater_id, ReadingSession.number == 2
            )
        ).one()
        sess.not_before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    item = next_item(rs.store, p)
    assert item is not None and item.session == 2 and item.assignment_id == session2


def test_starting_a_session_sets_the_next_ones_opening_once(make_study) -> None:  # type: ignore[no-untyped-def]
    rs = make_study(washout_days=7)
    p = rs.principals["alice"]
    next_item(rs.store, p)
    with rs.store.session() as s:
        s1, s2 = s.scalars(
            select(ReadingSession)
            .where(ReadingSession.rater_id == p.rater_id)
            .order_by(ReadingSession.number)
        )
        assert s1.started_at is not None and s2.not_before == s1.started_at + dt.timedelta(days=7)
        opened = s2.not_before
    next_item(rs.store, p)  # serving again changes nothing
    with rs.store.session() as s:
        s2 = s.scalars(
            select(ReadingSession).where(
                ReadingSession.rater_id == p.rater_id, ReadingSession.number == 2
            )
        ).one()
        assert s2.not_before == opened


def test_progress_and_resume_across_a_finished_queue(rs: RatingStudy) -> None:
    p = rs.principals["alice"]
    state = resume(rs.store, p)
    assert state.item is not None and state.message == "Item 1 of 5 (session 1 of 2)."
    assert next_item(rs.store, p) == state.item  # same item until it is answered
    for _ in range(5):
        _answer(rs, "alice")
    assert next_item(rs.store, p) is None
    prog = progress(rs.store, p)
    assert prog.finished and (prog.done, prog.total) == (5, 5)
    assert resume(rs.store, p).message == "All 5 items are done. Thank you."
    with rs.store.session() as s:
        sessions = s.scalars(
            select(ReadingSession).where(ReadingSession.rater_id == p.rater_id)
        ).all()
        assert all(x.finished_at is not None for x in sessions)
