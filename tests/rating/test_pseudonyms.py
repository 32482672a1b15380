"""The audit log names accounts by pseudonym: no name, token, hint or e-mail in any event."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from studyhub.demo.raters import RaterProfile, simulate_ratings
from studyhub.errors import InputError
from studyhub.rating import add_rater, revoke_rater
from studyhub.rating.pseudonyms import identity_leaks, pseudonym
from studyhub.rating.sso import link_sso
from studyhub.store.audit import append_event
from studyhub.store.models import AuditEvent, Rater
from studyhub.store.verify import verify_store
from tests.rating.conftest import STUDY, RatingStudy

READ_LAYOUT = [
    (1, 1, "training", 0, 0),
    (1, 2, "read", 1, 1),
    (1, 3, "catch", 2, 2),
    (1, 4, "read", 0, 3),
    (2, 1, "read", 1, 3),
    (2, 2, "repeat", 1, 1),
]


def _scripted_study(make_study) -> tuple[RatingStudy, set[str]]:  # type: ignore[no-untyped-def]
    """Raters with single sign-on, consent, answers, corrections, a relink and a revocation."""
    rs = make_study(raters=("Dr Alice Archer", "bob.builder", "Carol C."), layout=READ_LAYOUT)
    store = rs.store
    link_sso(store, STUDY, "Dr Alice Archer", "alice.archer@clinic.example", actor="lead")
    link_sso(store, STUDY, "Dr Alice Archer", "a.archer@clinic.example", actor="lead")
    link_sso(store, STUDY, "bob.builder", "bob@builders.example", actor="lead")
    late = add_rater(
        store,
        STUDY,
        "Dave Late",
        role="rater",
        qualifications={"inspection_years": "2"},
        sso_identity="dave@late.example",
        actor="lead",
    )
    summary = simulate_ratings(
        store,
        STUDY,
        seed=8,
        default=RaterProfile(correction_rate=0.5, free_text_rate=0.5, catch_failure=0.5),
    )
    assert summary.corrections > 0 and summary.unfinished == ["rater-" + str(late.rater_id)]
    link_sso(store, STUDY, "bob.builder", None, actor="lead")
    revoke_rater(store, STUDY, "Carol C.", actor="lead")
    revoke_rater(store, STUDY, "Dave Late", actor="lead")
    secrets = {
        "Dr Alice Archer",
        "bob.builder",
        "Carol C.",
        "Dave Late",
        "monica",
        "alice.archer@clinic.example",
        "a.archer@clinic.example",
        "bob@builders.example",
        "dave@late.example",
        late.token,
        late.hint,
    }
    secrets |= set(rs.tokens.values()) | {t.partition(".")[0] for t in rs.tokens.values()}
    return rs, secrets


def test_no_event_names_an_account_after_a_scripted_study(make_study) -> None:  # type: ignore[no-untyped-def]
    rs, secrets = _scripted_study(make_study)
    with rs.store.session() as s:
        events = list(s.scalars(select(AuditEvent).order_by(AuditEvent.seq)))
        actions = {e.action for e in events}
        # Every kind of account event was written, and the raters acted.
        assert {"rater_add", "rater_sso_link", "rater_revoke", "consent", "response"} <= actions
        assert {"response_correct", "item_served", "session_start"} <= actions
        for e in events:
            text = f"{e.actor}\n{e.payload}".lower()
            leaked = [x for x in secrets if x.lower() in text]
            assert leaked == [], f"event {e.seq} ({e.action}) carries {leaked}"
        raters = {r.id: r for r in s.scalars(select(Rater))}
        by_rater = [e for e in events if e.action in ("consent", "response", "response_correct")]
        for e in by_rater:
            rid = json.loads(e.payload)["rater_id"]
            assert e.actor == pseudonym("rater", rid) == f"rater-{rid}"
        add = [json.loads(e.payload) for e in events if e.action == "rater_add"]
        assert {a["pseudonym"] for a in add} == {pseudonym(r.role, r.id) for r in raters.values()}
        assert identity_leaks(s, STUDY) == []
    with rs.store.snapshot() as s:
        report = verify_store(s)
        assert report.ok, report.render()


def test_principal_and_listing_carry_the_pseudonym(rs: RatingStudy) -> None:
    alice = rs.principals["alice"]
    assert alice.pseudonym == f"rater-{alice.rater_id}"
    assert rs.principals["monica"].pseudonym == f"monitor-{rs.principals['monica'].rater_id}"
    from studyhub.rating import list_raters

    listed = {r.name: r.pseudonym for r in list_raters(rs.store, STUDY)}
    assert listed["alice"] == alice.pseudonym


def test_identity_leaks_finds_events_of_older_stores(rs: RatingStudy) -> None:
    store = rs.store
    link_sso(store, STUDY, "alice", "alice@clinic.example", actor="lead")
    with store.session() as s:
        alice = s.scalars(select(Rater).where(Rater.name == "alice")).one()
        bob = s.scalars(select(Rater).where(Rater.name == "bob")).one()
        hint_a, id_a, id_b = alice.token_hint, alice.id, bob.id
    with store.write() as s:  # what studyhub wrote before pseudonyms
        append_event(
            s,
            actor="lead",
            action="rater_add",
            study_id=STUDY,
            payload={"rater_id": id_a, "name": "alice", "hint": hint_a, "sso_identity": None},
        )
        append_event(s, actor="Bob", action="consent", study_id=STUDY, payload={"rater_id": id_b})
        append_event(
            s,
            actor="lead",
            action="rater_sso_link",
            study_id=STUDY,
            payload={"rater_id": id_a, "old": "old@clinic.example", "new": "alice@clinic.example"},
        )
        append_event(
            s,
            actor="rater-2",
            action="response_correct",
            study_id=STUDY,
            payload={"reason": "alphabet soup; 'alice' typed her own name", "rater_id": id_a},
        )
    with store.session() as s:
        leaks = identity_leaks(s, STUDY)
        seqs = list(s.scalars(select(AuditEvent.seq).order_by(AuditEvent.seq.desc()).limit(4)))
    a, b = f"rater-{id_a}", f"rater-{id_b}"
    assert leaks == [
        # in the order of the payload's (sorted) keys: hint, name
        f"audit event {seqs[3]} (rater_add): payload carries the token hint of {a}; payload "
        f"carries the name of {a}",
        f"audit event {seqs[2]} (consent): actor carries the name of {b}",
        # new (alice's address and, as a word, her name too), then old (some address)
        f"audit event {seqs[1]} (rater_sso_link): payload carries the name of {a}; payload "
        f"carries the single sign-on address of {a}; payload carries an e-mail address",
        f"audit event {seqs[0]} (response_correct): payload carries the name of {a}",
    ]
    assert not any(x in "\n".join(leaks) for x in ("alice@", "'alice'", hint_a, "Bob"))


@pytest.mark.parametrize("name", ["rater", "Monitor-3", "admin-12", " rater-1 "])
def test_names_shaped_like_pseudonyms_are_refused(rs: RatingStudy, name: str) -> None:
    with rs.store.session() as s:
        before = s.scalar(select(AuditEvent.seq).order_by(AuditEvent.seq.desc()).limit(1))
    with pytest.raises(InputError) as err:
        add_rater(rs.store, STUDY, name, role="rater", actor="lead")
    assert f"rater name {name.strip()!r} looks like an audit pseudonym" in str(err.value)
    assert "give e.g. the person's initials" in str(err.value)
    with rs.store.session() as s:
        assert s.scalar(select(AuditEvent.seq).order_by(AuditEvent.seq.desc()).limit(1)) == before


def test_cli_refuses_a_pseudonym_shaped_name(rs: RatingStudy, cli) -> None:  # type: ignore[no-untyped-def]
    with rs.store.session() as s:
        before = (
            s.scalar(select(func.count(Rater.id))),
            s.scalar(select(func.count(AuditEvent.seq))),
        )
    result = cli("--db", str(rs.store.url), "rater", "add", "monitor-2", "--role", "monitor")
    assert result.exit_code == 2
    assert "rater name 'monitor-2' looks like an audit pseudonym" in result.output
    with rs.store.session() as s:
        after = s.scalar(select(func.count(Rater.id))), s.scalar(select(func.count(AuditEvent.seq)))
    assert after == before
