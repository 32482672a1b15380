"""Answering: idempotent, atomic, audited responses; validation; corrections."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from studyhub.errors import InputError
from studyhub.rating import (
    SubmitResult,
    correct,
    next_item,
    progress,
    respond,
    submit,
)
from studyhub.store.audit import verify_chain
from studyhub.store.models import Assignment, AuditEvent, Response
from tests.rating.conftest import GOOD, RatingStudy, answer_next, new_key, stored_responses

# --- answers ---------------------------------------------------------------------


def test_submit_stores_one_timestamped_response_with_its_audit_event(rs: RatingStudy) -> None:
    item, result = answer_next(
        rs,
        "alice",
        {"usefulness": "4", "plausible": True, "comment": "  edge glare  "},
        cue_marks=[{"x": 0.25, "y": 0.5, "tag": "misleading"}],
        time_on_task_ms=5300,
    )
    assert not result.duplicate and result.submitted_at.tzinfo is not None
    (row,) = stored_responses(rs)
    assert row.answers == {"usefulness": 4, "plausible": "yes", "comment": "edge glare"}
    assert row.cue_marks == {"marks": [{"x": 0.25, "y": 0.5, "tag": "misleading"}]}
    assert row.time_on_task_ms == 5300 and row.assignment_id == item.assignment_id
    with rs.store.session() as s:
        ev = s.scalars(select(AuditEvent).where(AuditEvent.action == "response")).one()
        assert ev.actor == rs.principals["alice"].pseudonym and str(row.id) in ev.payload
        assert ev.actor == f"rater-{row.rater_id}" and "alice" not in ev.payload
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
    assert len(stored_responses(rs)) == 1
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
        submit(rs.store, p, item.assignment_id, GOOD, time_on_task_ms=1, idempotency_key=new_key())
    assert len(stored_responses(rs)) == 1


def test_idempotency_keys_are_scoped_to_the_rater(rs: RatingStudy) -> None:
    _a, ra = answer_next(rs, "alice", idempotency_key="same-key")
    _b, rb = answer_next(rs, "bob", idempotency_key="same-key")
    assert not rb.duplicate and ra.response_id != rb.response_id
    assert len(stored_responses(rs)) == 2


def test_a_crash_inside_the_transaction_leaves_no_response(rs: RatingStudy, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    p = rs.principals["alice"]
    item = next_item(rs.store, p)
    assert item is not None

    def boom(*_a: object, **_k: object) -> None:
        raise RuntimeError("power cut")

    monkeypatch.setattr(respond, "append_event", boom)
    with pytest.raises(RuntimeError, match="power cut"):
        submit(rs.store, p, item.assignment_id, GOOD, time_on_task_ms=1, idempotency_key="k1")
    assert stored_responses(rs) == []
    monkeypatch.undo()
    # the retry with the same key now stores it, once
    result = submit(rs.store, p, item.assignment_id, GOOD, time_on_task_ms=1, idempotency_key="k1")
    assert not result.duplicate and len(stored_responses(rs)) == 1
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
    assert stored_responses(rs) == []


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
    assert stored_responses(rs) == []


# --- corrections -----------------------------------------------------------------


def test_a_correction_supersedes_and_keeps_the_original(rs: RatingStudy) -> None:
    p = rs.principals["alice"]
    _item, first = answer_next(rs, "alice", cue_marks=[{"x": 0.1, "y": 0.1, "tag": "correct"}])
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
    original, corr1, corr2 = stored_responses(rs)
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


# --- races and the database's own guarantees -------------------------------------


def test_a_double_click_racing_on_two_connections_stores_one_response(rs: RatingStudy) -> None:
    p = rs.principals["alice"]
    item = next_item(rs.store, p)
    assert item is not None
    barrier = threading.Barrier(2)
    results: list[object] = []

    def click() -> None:
        barrier.wait()
        try:
            results.append(
                submit(
                    rs.store, p, item.assignment_id, GOOD, time_on_task_ms=9, idempotency_key="x"
                )
            )
        except Exception as exc:  # collected: the assertion below names it
            results.append(exc)

    threads = [threading.Thread(target=click) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(isinstance(r, SubmitResult) for r in results), results
    ids = {r.response_id for r in results if isinstance(r, SubmitResult)}
    assert len(ids) == 1 and len(stored_responses(rs)) == 1
    assert sorted(r.duplicate for r in results if isinstance(r, SubmitResult)) == [False, True]


def test_the_database_refuses_a_second_original_answer(rs: RatingStudy) -> None:
    item, first = answer_next(rs, "alice")
    with pytest.raises(IntegrityError), rs.store.write() as s:
        s.add(
            Response(
                assignment_id=item.assignment_id,
                rater_id=rs.principals["alice"].rater_id,
                idempotency_key="f" * 64,
                answers=GOOD,
                cue_marks={"marks": []},
                submitted_at=first.submitted_at,
            )
        )
        s.flush()
    assert len(stored_responses(rs)) == 1
