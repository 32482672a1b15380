"""Progress and resume."""

from __future__ import annotations

from sqlalchemy import select

from studyhub.rating import (
    next_item,
    progress,
    resume,
)
from studyhub.store.models import ReadingSession
from tests.rating.conftest import RatingStudy, answer_next


def test_progress_and_resume_across_a_finished_queue(rs: RatingStudy) -> None:
    p = rs.principals["alice"]
    state = resume(rs.store, p)
    assert state.item is not None and state.message == "Item 1 of 5 (session 1 of 2)."
    assert next_item(rs.store, p) == state.item  # same item until it is answered
    for _ in range(5):
        answer_next(rs, "alice")
    assert next_item(rs.store, p) is None
    prog = progress(rs.store, p)
    assert prog.finished and (prog.done, prog.total) == (5, 5)
    assert resume(rs.store, p).message == "All 5 items are done. Thank you."
    with rs.store.session() as s:
        sessions = s.scalars(
            select(ReadingSession).where(ReadingSession.rater_id == p.rater_id)
        ).all()
        assert all(x.finished_at is not None for x in sessions)
