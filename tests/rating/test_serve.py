"""Serving items: blinding, own-queue access, roles, revocation, lifecycle, washout."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

import pytest
from sqlalchemy import select

from studyhub.errors import AccessError, AuthError, InputError, LifecycleError
from studyhub.rating import (
    ServedItem,
    correct,
    monitor_summary,
    next_item,
    progress,
    resume,
    submit,
)
from studyhub.rating.accounts import revoke_rater
from studyhub.store import lifecycle
from studyhub.store.audit import append_event, verify_chain
from studyhub.store.models import Assignment, AuditEvent, ReadingSession, Study
from tests.rating.conftest import GOOD, STUDY, RatingStudy, answer_next, new_key, stored_responses

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
        item, _r = answer_next(rs, "alice", {"usefulness": 2, "plausible": "no"})
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
            idempotency_key=new_key(),
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
    assert stored_responses(rs) == []


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
    answer_next(rs, "alice", time_on_task_ms=3000)
    answer_next(rs, "alice", time_on_task_ms=5000)
    answer_next(rs, "alice", {"usefulness": 5, "plausible": "yes"})  # the catch item, failed
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
        answer_next(rs, "alice")
    _item, r = answer_next(rs, "alice", {"usefulness": 5, "plausible": "yes"})
    correct(
        rs.store,
        rs.principals["alice"],
        r.assignment_id,
        {"usefulness": 2, "plausible": "yes"},
        reason="misread the instruction",
        idempotency_key=new_key(),
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
            idempotency_key=new_key(),
        )
    assert stored_responses(rs) == []


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
            idempotency_key=new_key(),
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
            idempotency_key=new_key(),
        )


# --- sessions, washout, progress, resume -----------------------------------------


def test_washout_blocks_the_next_session_until_it_opens(make_study) -> None:  # type: ignore[no-untyped-def]
    rs = make_study(washout_days=14)
    p = rs.principals["alice"]
    for _ in range(3):
        answer_next(rs, "alice")
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
        append_event(s, actor="test", action="test_time_passes", study_id=STUDY)
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


def test_the_first_serving_of_each_item_is_stamped_and_audited_once(rs: RatingStudy) -> None:
    p = rs.principals["alice"]
    first = next_item(rs.store, p)
    again = next_item(rs.store, p)  # a page reload serves the same item
    assert first is not None and again is not None
    assert again.assignment_id == first.assignment_id and again.image_png == first.image_png
    answer_next(rs, "alice")  # answers the first item
    assert next_item(rs.store, p) is not None  # serves the second
    with rs.store.session() as s:
        served = [
            e.payload
            for e in s.scalars(select(AuditEvent).where(AuditEvent.action == "item_served"))
        ]
        stamped = s.scalars(
            select(Assignment.id).where(
                Assignment.rater_id == p.rater_id, Assignment.first_served_at.is_not(None)
            )
        ).all()
        assert verify_chain(s).ok
    assert len(served) == 2 == len(stamped)  # the first item once, then the second
    assert str(first.assignment_id) in served[0]
