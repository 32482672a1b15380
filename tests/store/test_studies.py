"""Registration, amendments, the lifecycle and status."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from studyhub.errors import InputError, LifecycleError
from studyhub.protocol import load_study
from studyhub.store import lifecycle
from studyhub.store.audit import verify_chain
from studyhub.store.models import Amendment, Arm, AuditEvent, Study
from studyhub.store.studies import amend, check_unchanged, close, register, status


def _advance(store, *states: str) -> None:  # type: ignore[no-untyped-def]
    with store.write() as s:
        study = s.scalars(select(Study)).one()
        for st in states:
            lifecycle.advance(s, study, st, actor="test")


def test_register_stores_texts_hashes_and_arms(store, demo_copy: Path) -> None:  # type: ignore[no-untyped-def]
    files = load_study(demo_copy)
    reg = register(store, files, actor="lead")
    assert reg.created and reg.study_id == "inspection_demo"
    assert reg.registered_at.tzinfo is not None
    with store.session() as s:
        study = s.get(Study, "inspection_demo")
        assert study is not None
        assert study.state == "registered"
        assert study.protocol_text == demo_copy.read_text()
        assert study.registration_hash == files.registration_hash
        assert {a.arm_key for a in s.scalars(select(Arm))} == {
            "ig",
            "gradcam",
            "random_map",
            "randomized_model",
        }
        event = s.scalars(select(AuditEvent)).one()
        assert event.action == "register" and event.actor == "lead"
        assert files.registration_hash in event.payload


def test_register_twice_is_idempotent(store, demo_copy: Path) -> None:  # type: ignore[no-untyped-def]
    files = load_study(demo_copy)
    first = register(store, files, actor="lead")
    second = register(store, load_study(demo_copy), actor="lead")
    assert not second.created
    assert second.registration_hash == first.registration_hash
    with store.session() as s:
        assert len(s.scalars(select(Study)).all()) == 1
        assert len(s.scalars(select(AuditEvent)).all()) == 1


def _sixty_cases(text: str) -> str:
    """The demo protocol asking for 60 cases (its quotas must add up to n_cases)."""
    return text.replace("n_cases: 40", "n_cases: 60").replace("pit|dim: 5", "pit|dim: 25")


def test_modified_copy_without_amend_is_refused(store, demo_copy: Path) -> None:  # type: ignore[no-untyped-def]
    register(store, load_study(demo_copy), actor="lead")
    demo_copy.write_text(_sixty_cases(demo_copy.read_text()))
    with pytest.raises(LifecycleError, match=r"already registered with hash .*studyhub amend"):
        register(store, load_study(demo_copy), actor="lead")


def test_amend_records_old_and_new_hash_and_reason(store, demo_copy: Path) -> None:  # type: ignore[no-untyped-def]
    old = register(store, load_study(demo_copy), actor="lead").registration_hash
    demo_copy.write_text(_sixty_cases(demo_copy.read_text()))
    new_files = load_study(demo_copy)
    reg = amend(store, new_files, reason="Power simulation asks for 60 cases", actor="lead")
    assert reg.amendment == 1
    with store.session() as s:
        row = s.scalars(select(Amendment)).one()
        assert (row.old_hash, row.new_hash) == (old, new_files.registration_hash)
        assert row.reason == "Power simulation asks for 60 cases"
        assert s.get(Study, "inspection_demo").registration_hash == new_files.registration_hash  # type: ignore[union-attr]
        assert verify_chain(s).events == 2
    # the amended files now register idempotently
    assert not register(store, new_files, actor="lead").created


def test_amend_needs_a_reason_and_a_change(store, demo_copy: Path) -> None:  # type: ignore[no-untyped-def]
    files = load_study(demo_copy)
    register(store, files, actor="lead")
    with pytest.raises(InputError, match="--reason 'x' is too short"):
        amend(store, files, reason="x", actor="lead")
    with pytest.raises(InputError, match="unchanged"):
        amend(store, files, reason="nothing changed at all", actor="lead")


def test_amend_refused_after_unblinding(store, demo_copy: Path) -> None:  # type: ignore[no-untyped-def]
    register(store, load_study(demo_copy), actor="lead")
    _advance(store, "enrolling", "rating", "closed", "analyzed")
    demo_copy.write_text(_sixty_cases(demo_copy.read_text()))
    with pytest.raises(
        LifecycleError, match="unblinded; amendments after unblinding are not allowed"
    ):
        amend(store, load_study(demo_copy), reason="too late to change anything", actor="lead")


def test_lifecycle_refuses_steps_out_of_order(store, demo_copy: Path) -> None:  # type: ignore[no-untyped-def]
    register(store, load_study(demo_copy), actor="lead")
    with store.session() as s:
        study = s.get(Study, "inspection_demo")
        assert study is not None
        with pytest.raises(
            LifecycleError, match="cannot rate: study 'inspection_demo' is registered"
        ):
            lifecycle.require(study, "rate")
        lifecycle.require(study, "enroll")
    with pytest.raises(LifecycleError, match="close is allowed only when the study is rating"):
        close(store, None, actor="lead")
    _advance(store, "enrolling", "rating")
    close(store, None, actor="lead")
    with store.session() as s:
        study = s.get(Study, "inspection_demo")
        assert study is not None and study.state == "closed"
        with pytest.raises(
            LifecycleError, match="cannot enroll: study 'inspection_demo' is closed"
        ):
            lifecycle.require(study, "enroll")


def test_illegal_transition_is_refused(store, demo_copy: Path) -> None:  # type: ignore[no-untyped-def]
    register(store, load_study(demo_copy), actor="lead")
    with pytest.raises(LifecycleError, match="cannot go from registered to closed"):
        _advance(store, "closed")
    with store.session() as s:
        assert s.get(Study, "inspection_demo").state == "registered"  # type: ignore[union-attr]


def test_unblinding_is_stamped_and_audited(store, demo_copy: Path) -> None:  # type: ignore[no-untyped-def]
    register(store, load_study(demo_copy), actor="lead")
    _advance(store, "enrolling", "rating", "closed", "analyzed")
    with store.session() as s:
        study = s.get(Study, "inspection_demo")
        assert study is not None and study.unblinded_at is not None
        actions = [e.action for e in s.scalars(select(AuditEvent).order_by(AuditEvent.seq))]
        assert actions == ["register"] + ["state_change"] * 4
        assert verify_chain(s).ok


def test_analysis_refused_when_plan_changed(store, demo_copy: Path) -> None:  # type: ignore[no-untyped-def]
    register(store, load_study(demo_copy), actor="lead")
    plan = demo_copy.parent.parent / "analysis" / "inspection_demo.yaml"
    plan.write_text(plan.read_text().replace("margin: 0.5", "margin: 0.8"))
    with store.session() as s:
        study = s.get(Study, "inspection_demo")
        assert study is not None
        with pytest.raises(
            LifecycleError, match=r"analysis plan .* has changed since registration"
        ):
            check_unchanged(study, load_study(demo_copy))


def test_status_counts_without_unblinding(store, demo_copy: Path) -> None:  # type: ignore[no-untyped-def]
    register(store, load_study(demo_copy), actor="lead")
    st = status(store, None)
    assert st.state == "registered" and st.amendments == 0
    assert st.counts["arms"] == 4 and st.counts["responses"] == 0
    arm_ids = {"ig", "gradcam", "random_map", "randomized_model"}
    words = {w for key in st.counts for w in key.split()}
    assert not words & arm_ids
