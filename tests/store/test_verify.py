"""Every stored fact is bound to the audit chain: tampering of each kind is found and named.

Each test builds a study in ``rating`` (raters, consents, sessions, assignments,
stimuli with PNG and attribution blobs, an amendment) and two answers through
the services, checks that ``audit verify`` passes, edits the database behind
studyhub's back (the audit table untouched) and checks that verification fails
naming the table, the row and what differs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from studyhub.errors import AuditChainError
from studyhub.protocol import load_study
from studyhub.rating import next_item
from studyhub.store.models import Arm, AuditEvent, Response, Study
from studyhub.store.studies import amend, register
from studyhub.store.verify import anchor, check_anchor, verify_store
from tests.rating.conftest import (  # noqa: F401 - fixtures used by name
    STUDY,
    RatingStudy,
    answer_next,
    make_study,
)

pytestmark = pytest.mark.tampers


@pytest.fixture
def rated(make_study) -> RatingStudy:  # type: ignore[no-untyped-def]  # noqa: F811
    """A study in rating with three answers stored through the service, verified OK."""
    return _rated(make_study())


def _report(store):  # type: ignore[no-untyped-def]
    with store.snapshot() as s:
        return verify_store(s)


def _rated(r: RatingStudy) -> RatingStudy:
    answer_next(r, "alice")
    answer_next(r, "alice")
    answer_next(r, "bob")
    report = _report(r.store)
    assert report.ok, report.render()
    return r


def _tamper(r: RatingStudy, sql: str, **params: Any) -> None:
    with r.store.engine.begin() as conn:
        conn.execute(text(sql), params)


def _lines(r: RatingStudy) -> list[str]:
    report = _report(r.store)
    assert not report.ok
    assert report.chain.ok, "the edit left the audit table itself untouched"
    return [d.render() for d in report.discrepancies]


def _first_id(r: RatingStudy, table: str) -> int:
    with r.store.engine.connect() as conn:
        return int(conn.execute(text(f'SELECT min(id) FROM "{table}"')).scalar_one())


# (table, SQL of the edit, what the report must say about the row)
EDITS = [
    ("response", "UPDATE response SET answers = '{\"usefulness\": 1}' WHERE id = :id", "answers"),
    ("response", "UPDATE response SET time_on_task_ms = 1 WHERE id = :id", "time_on_task_ms"),
    ("case", "UPDATE \"case\" SET label = 'none' WHERE id = :id", "label"),
    ("case", "UPDATE \"case\" SET image_sha256 = 'ff' WHERE id = :id", "image_sha256"),
    ("stimulus", "UPDATE stimulus SET image_png = :blob WHERE id = :id", "image_png"),
    ("stimulus", "UPDATE stimulus SET attribution = :blob WHERE id = :id", "attribution"),
    ("stimulus", "UPDATE stimulus SET narrative = 'x' WHERE id = :id", "narrative"),
    (
        "assignment",
        "UPDATE assignment SET stimulus_id = stimulus_id + 1 WHERE id = :id",
        "stimulus_id",
    ),
    ("arm", "UPDATE arm SET method = 'saliency' WHERE id = :id", "method"),
    ("rater", "UPDATE rater SET role = 'admin' WHERE id = :id", "role"),
    ("consent", "UPDATE consent SET statement_sha256 = 'ab' WHERE id = :id", "statement_sha256"),
    ("reading_session", "UPDATE reading_session SET number = number + 10 WHERE id = :id", "number"),
    (
        "prediction",
        "UPDATE prediction SET probability_calibrated = 0.5 WHERE id = :id",
        "probability_calibrated",
    ),
    (
        "model_version",
        "UPDATE model_version SET weights_sha256 = 'cd' WHERE id = :id",
        "weights_sha256",
    ),
]


@pytest.mark.parametrize(("table", "sql", "column"), EDITS, ids=[e[2] for e in EDITS])
def test_an_edited_row_is_named_with_its_column(
    rated: RatingStudy, table: str, sql: str, column: str
) -> None:
    r = rated
    row = _first_id(r, table)
    _tamper(r, sql, id=row, blob=b"\x89PNG forged")
    lines = _lines(r)
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{table} row {row}: changed outside studyhub: ")
    assert column in lines[0]
    assert "(recorded by event" in lines[0]


def test_an_inserted_response_is_found(rated: RatingStudy) -> None:
    r = rated
    _tamper(
        r,
        "INSERT INTO response (assignment_id, rater_id, idempotency_key, answers, cue_marks, "
        "time_on_task_ms, supersedes_id, reason, submitted_at) SELECT assignment_id, rater_id, "
        "'forged', answers, cue_marks, 10, id, 'x', submitted_at FROM response WHERE id = :id",
        id=_first_id(r, "response"),
    )
    with r.store.session() as s:
        forged = s.scalar(select(Response.id).where(Response.idempotency_key == "forged"))
    assert _lines(r) == [
        f"response row {forged}: no audit event records this row: inserted outside studyhub"
    ]


def test_a_deleted_response_is_found(rated: RatingStudy) -> None:
    r = rated
    row = _first_id(r, "response")
    _tamper(r, "DELETE FROM response WHERE id = :id", id=row)
    (line,) = _lines(r)
    assert line.startswith(f"response row {row}: deleted outside studyhub (recorded by event ")


def test_a_changed_arm_id_is_found(rated: RatingStudy) -> None:
    """Moving an arm's stimuli to a new arm id: a deletion, an insertion and changed stimuli."""
    r = rated
    with r.store.session() as s:
        arm = s.scalar(select(Arm.id).order_by(Arm.id.desc()))
        n_stimuli = s.scalar(text("SELECT count(*) FROM stimulus WHERE arm_id = :a"), {"a": arm})
    _tamper(
        r,
        "INSERT INTO arm (id, study_id, arm_key, kind, method, params) SELECT 999, study_id, "
        "arm_key || '2', kind, method, params FROM arm WHERE id = :a",
        a=arm,
    )
    _tamper(r, "UPDATE stimulus SET arm_id = 999 WHERE arm_id = :a", a=arm)
    _tamper(r, "DELETE FROM arm WHERE id = :a", a=arm)
    lines = _lines(r)
    assert "arm row 999: no audit event records this row: inserted outside studyhub" in lines
    assert any(line.startswith(f"arm row {arm}: deleted outside studyhub") for line in lines)
    moved = [line for line in lines if "arm_id differ" in line]
    assert len(moved) == n_stimuli and all(line.startswith("stimulus row") for line in moved)


def test_every_discrepancy_is_reported_not_only_the_first(rated: RatingStudy) -> None:
    r = rated
    _tamper(r, "UPDATE response SET time_on_task_ms = 1")
    _tamper(r, "UPDATE \"case\" SET label = 'none'")
    with r.store.engine.connect() as conn:
        responses = conn.execute(text("SELECT count(*) FROM response")).scalar_one()
        cases = conn.execute(text('SELECT count(*) FROM "case"')).scalar_one()
    lines = _lines(r)
    assert len(lines) == responses + cases
    assert sum(line.startswith("response row") for line in lines) == responses


def test_an_edited_protocol_text_is_never_served(rated: RatingStudy, demo_copy: Path, cli) -> None:  # type: ignore[no-untyped-def]
    """The edit the reviewer made: the prompt changed in study.protocol_canonical."""
    r = rated
    with r.store.session() as s:
        canonical = s.scalar(select(Study.protocol_canonical))
    assert canonical is not None and "usefulness" in canonical
    forged = canonical.replace("How useful", "How USELESS")
    assert forged != canonical
    _tamper(r, "UPDATE study SET protocol_canonical = :t", t=forged)
    (line,) = _lines(r)
    assert line.startswith(f"study row {STUDY}: changed outside studyhub: protocol_canonical")
    # a fresh process (empty protocol cache) refuses to serve it
    from studyhub.rating import _common

    _common._cache.clear()
    with pytest.raises(AuditChainError, match="stored protocol text does not hash"):
        next_item(r.store, r.principals["bob"])
    # status says so, and fails
    status = cli("--db", r.store.url, "status")
    assert status.exit_code == 1
    assert "FAILED: study 'inspection_demo' does not match its registration" in status.stderr
    # and registering the original file no longer says "already registered (unchanged)"
    with pytest.raises(AuditChainError, match="does not match its registration"):
        register(r.store, load_study(demo_copy), actor="lead")


def test_a_consistently_rewritten_registration_is_refused(rated: RatingStudy) -> None:
    """Texts and every hash column rewritten together still disagree with the chain."""
    from studyhub.protocol.load import CANONICAL_VERSION, sha256_text

    r = rated
    with r.store.session() as s:
        study = s.get_one(Study, STUDY)
        plan = study.plan_canonical.replace('"alpha":0.05', '"alpha":0.5')
        protocol_hash = study.protocol_hash
    assert plan != study.plan_canonical
    plan_hash = sha256_text(plan)
    reg = sha256_text(f"{CANONICAL_VERSION}\nprotocol {protocol_hash}\nplan {plan_hash}\n")
    _tamper(
        r,
        "UPDATE study SET plan_canonical = :p, plan_hash = :ph, registration_hash = :reg",
        p=plan,
        ph=plan_hash,
        reg=reg,
    )
    from studyhub.rating import _common

    _common._cache.clear()
    with pytest.raises(AuditChainError, match="the audit log registered hash"):
        next_item(r.store, r.principals["bob"])
    (line,) = _lines(r)
    assert "plan_canonical" in line and "registration_hash" in line


def test_amendments_and_their_reasons_are_bound(store, demo_copy: Path) -> None:  # type: ignore[no-untyped-def]
    register(store, load_study(demo_copy), actor="lead")
    bigger = demo_copy.read_text().replace("n_cases: 40", "n_cases: 60")
    demo_copy.write_text(bigger.replace("pit|dim: 5", "pit|dim: 25"))  # quotas add up to n_cases
    amend(store, load_study(demo_copy), reason="Power simulation asks for 60 cases", actor="lead")
    assert _report(store).ok
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE amendment SET reason = 'because we felt like it'"))
    report = _report(store)
    assert [d.render() for d in report.discrepancies] == [
        "amendment row 1: changed outside studyhub: reason differ (recorded by event 2)"
    ]


def test_each_event_records_the_rows_of_its_write(rated: RatingStudy) -> None:
    r = rated
    with r.store.session() as s:
        events = list(s.scalars(select(AuditEvent).order_by(AuditEvent.seq)))
    responses = [e for e in events if e.action == "response"]
    assert len(responses) == 3
    for e in responses:
        rows = json.loads(e.rows or "{}")
        assert list(rows["response"]) == [str(json.loads(e.payload)["response_id"])]
        digest = rows["response"][str(json.loads(e.payload)["response_id"])]
        assert len(digest["sha256"]) == 64 and "answers" in digest["columns"]


def test_an_anchor_reveals_a_rewritten_chain(rated: RatingStudy) -> None:
    r = rated
    with r.store.snapshot() as s:
        kept = anchor(s)
    with r.store.snapshot() as s:
        assert check_anchor(s, (kept.seq, kept.head_hash)).startswith("anchor OK")
    # rewrite the last event consistently (new hash, head moved): the chain verifies on its own
    from studyhub.store.audit import event_hash

    with r.store.session() as s:
        last = s.get_one(AuditEvent, kept.seq)
        forged = event_hash(
            seq=last.seq,
            study_id=last.study_id,
            actor="mallory",
            action=last.action,
            payload=last.payload,
            created_at=last.created_at,
            prev_hash=last.prev_hash,
            rows=last.rows,
        )
    _tamper(
        r,
        "UPDATE audit_event SET actor = 'mallory', hash = :h WHERE seq = :s",
        h=forged,
        s=kept.seq,
    )
    _tamper(r, "UPDATE audit_head SET hash = :h", h=forged)
    assert _report(r.store).ok
    with r.store.snapshot() as s:
        line = check_anchor(s, (kept.seq, kept.head_hash))
    assert line.startswith(f"anchor MISMATCH: event {kept.seq} has hash {forged[:12]}")


def test_cli_audit_verify_names_the_row_and_exits_1(
    rated: RatingStudy, cli, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    r = rated
    db = r.store.url
    ok = cli("--db", db, "audit", "verify")
    assert ok.exit_code == 0, ok.output
    assert "audit chain OK" in ok.stdout and "data rows OK" in ok.stdout
    kept = tmp_path / "anchor.json"
    assert cli("--db", db, "audit", "anchor", "--out", str(kept)).exit_code == 0
    assert json.loads(kept.read_text())["audit_head_hash"] in ok.stdout
    row = _first_id(r, "response")
    _tamper(r, "UPDATE response SET answers = '{\"usefulness\": 1}' WHERE id = :id", id=row)
    bad = cli("--db", db, "audit", "verify", "--anchor", str(kept))
    assert bad.exit_code == 1
    assert f"response row {row}: changed outside studyhub: answers differ" in bad.stderr
    assert "anchor OK" in bad.stderr  # the chain itself was not rewritten
