"""Writing assignments: sessions, items, audit, lifecycle, idempotence, ``assign --check``."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select

from studyhub.blinding import assign_study, washout_until
from studyhub.errors import LifecycleError
from studyhub.protocol import load_study
from studyhub.store import lifecycle
from studyhub.store.audit import append_event, verify_chain
from studyhub.store.db import Store, open_store
from studyhub.store.models import (
    Arm,
    Assignment,
    AuditEvent,
    Case,
    Rater,
    ReadingSession,
    Stimulus,
    Study,
    utcnow,
)
from studyhub.store.studies import register

N_CASES = 8


def _add_raters(store: Store, names: list[str]) -> None:
    with store.write() as s:
        for name in names:
            s.add(
                Rater(
                    study_id="inspection_demo",
                    name=name,
                    role="rater",
                    token_hash="x",
                    token_hint="x",
                    created_at=utcnow(),
                )
            )
        append_event(s, actor="test", action="test_setup", study_id="inspection_demo")


@pytest.fixture
def study(tmp_path: Path, demo_copy: Path) -> Store:
    store = open_store(f"sqlite:///{tmp_path / 'studyhub.db'}")
    register(store, load_study(demo_copy), actor="lead")
    with store.write() as s:
        st = s.get(Study, "inspection_demo")
        assert st is not None
        lifecycle.advance(s, st, "enrolling", actor="lead")
        arms = s.scalars(select(Arm)).all()
        for c in range(N_CASES):
            case = Case(
                study_id=st.id,
                case_key=f"case{c}",
                source=f"demo:{c}",
                image_sha256="0" * 64,
                label="crack",
                enrolled_at=utcnow(),
            )
            s.add(case)
            s.flush()
            for arm in arms:
                s.add(
                    Stimulus(
                        study_id=st.id,
                        case_id=case.id,
                        arm_id=arm.id,
                        code=f"c{c}{arm.arm_key}"[:32],
                        image_png=b"\x89PNG fake",
                        created_at=utcnow(),
                    )
                )
    yield store
    store.dispose()


def test_too_few_raters_are_refused(study: Store) -> None:
    _add_raters(study, ["r1", "r2"])
    with pytest.raises(LifecycleError) as exc:
        assign_study(study, None, actor="lead")
    assert str(exc.value) == (
        "study 'inspection_demo' has 2 active raters but raters.min_raters is 6; "
        "add raters with studyhub rater add"
    )


def test_assign_writes_sessions_items_audit_and_opens_rating(study: Store) -> None:
    _add_raters(study, [f"r{i}" for i in range(6)])
    report = assign_study(study, None, actor="lead")
    assert not report.already_done and len(report.raters) == 6
    with study.session() as s:
        assert s.get(Study, "inspection_demo").state == "rating"  # type: ignore[union-attr]
        sessions = s.scalars(select(ReadingSession)).all()
        assert len(sessions) == 12 and all(rs.not_before is None for rs in sessions)
        items = s.scalars(select(Assignment)).all()
        assert len(items) == report.assignments
        kinds = Counter(a.kind for a in items)
        assert kinds["read"] == 6 * N_CASES * 4  # fully crossed, 4 arms
        assert kinds["training"] == 6 * 3
        for a in items:
            if a.kind == "repeat":
                orig = s.get(Assignment, a.repeat_of_id)
                assert orig is not None and orig.kind == "read"
                assert orig.stimulus_id == a.stimulus_id and orig.rater_id == a.rater_id
            if a.kind == "catch":
                assert a.expected is not None and "usefulness" in a.expected["answers"]
        actions = [e.action for e in s.scalars(select(AuditEvent).order_by(AuditEvent.seq))]
        assert actions[-2:] == ["assign", "state_change"]
        assert verify_chain(s).ok


def test_rerun_does_nothing_and_late_raters_get_their_own(study: Store) -> None:
    _add_raters(study, [f"r{i}" for i in range(6)])
    assign_study(study, None, actor="lead")
    with study.session() as s:
        before = s.scalars(select(Assignment.id)).all()
    again = assign_study(study, None, actor="lead")
    assert again.already_done and again.assignments == 0
    with study.session() as s:
        assert s.scalars(select(Assignment.id)).all() == before
    _add_raters(study, ["late"])
    late = assign_study(study, None, actor="lead")
    assert late.raters == ["late"]
    with study.session() as s:
        assert len(s.scalars(select(Assignment.id)).all()) == len(before) + late.assignments


def test_washout_until() -> None:
    t = utcnow()
    assert (washout_until(t, 14) - t).days == 14


def test_assign_check_prints_the_balance_table_and_writes_nothing(study: Store, cli) -> None:  # type: ignore[no-untyped-def]
    _add_raters(study, [f"r{i}" for i in range(6)])
    url = study.url
    with study.session() as s:
        n_events = len(s.scalars(select(AuditEvent)).all())
    res = cli("--db", url, "assign", "--check")
    assert res.exit_code == 0, res.output
    for word in (
        "Balance per rater",
        "ig",
        "gradcam",
        "random_map",
        "planned",
        "min gap",
        "Readings per stimulus",
        "check only: nothing written",
    ):
        assert word in res.stdout
    with study.session() as s:
        assert len(s.scalars(select(AuditEvent)).all()) == n_events
        assert s.scalars(select(Assignment)).first() is None
    res = cli("--db", url, "assign")
    assert res.exit_code == 0, res.output
    assert "assigned 6 raters" in res.stdout
    res = cli("--db", url, "assign")
    assert "already assigned; nothing to do" in res.stdout
    res = cli("--db", url, "assign", "--check")
    assert "assigned" in res.stdout and "planned" not in res.stdout


def test_assign_cli_too_few_raters_exits_2(study: Store, cli) -> None:  # type: ignore[no-untyped-def]
    res = cli("--db", study.url, "assign")
    assert res.exit_code == 2
    assert "add raters with studyhub rater add" in res.stderr
