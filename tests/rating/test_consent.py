"""Consent: recorded in the store with its statement's hash, before any item is served."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from sqlalchemy import func, select

from studyhub.errors import AccessError, InputError
from studyhub.protocol import load_study
from studyhub.rating import consent_page, give_consent, monitor_summary, next_item
from studyhub.store.audit import verify_chain
from studyhub.store.models import Assignment, AuditEvent, Consent
from studyhub.store.studies import amend
from tests.rating.conftest import RatingStudy


def _count(rs: RatingStudy, what: object) -> int:
    with rs.store.session() as s:
        return int(s.scalar(select(func.count()).select_from(what)) or 0)  # type: ignore[arg-type]


def test_no_item_is_served_before_consent_and_nothing_is_stamped(make_study) -> None:  # type: ignore[no-untyped-def]
    rs = make_study(consented=False)
    with pytest.raises(AccessError, match=r"consent first: 'alice' has not agreed .*give_consent"):
        next_item(rs.store, rs.principals["alice"])
    with rs.store.session() as s:
        assert not s.scalar(
            select(func.count(Assignment.id)).where(Assignment.first_served_at.is_not(None))
        )


def test_the_start_page_reads_the_registered_statement_and_serves_nothing(make_study) -> None:  # type: ignore[no-untyped-def]
    rs = make_study(consented=False)
    page = consent_page(rs.store, rs.principals["alice"])
    assert page.given_at is None
    assert page.statement.startswith("I take part voluntarily")
    # the hash is of the words shown, computed here independently
    assert page.statement_sha256 == hashlib.sha256(page.statement.encode()).hexdigest()
    assert (page.progress.done, page.progress.total) == (0, 5)
    assert "5 items" in page.message
    with rs.store.session() as s:
        assert not s.scalar(
            select(func.count(Assignment.id)).where(Assignment.first_served_at.is_not(None))
        )


def test_consent_is_stored_once_with_one_audit_event(make_study) -> None:  # type: ignore[no-untyped-def]
    rs = make_study(consented=False)
    alice = rs.principals["alice"]
    digest = consent_page(rs.store, alice).statement_sha256
    first = give_consent(rs.store, alice, digest)
    again = give_consent(rs.store, alice, digest)
    assert again == first and consent_page(rs.store, alice).given_at == first
    assert _count(rs, Consent) == 1
    with rs.store.session() as s:
        events = list(s.scalars(select(AuditEvent).where(AuditEvent.action == "consent")))
        assert (
            len(events) == 1
            and digest in events[0].payload
            and events[0].actor == f"rater-{alice.rater_id}"
        )
        assert verify_chain(s).ok
    assert next_item(rs.store, alice) is not None
    rows = {r.name: r.consented for r in monitor_summary(rs.store, rs.principals["monica"]).raters}
    assert rows == {"alice": True, "bob": False}


def test_a_stale_statement_hash_is_refused_and_nothing_written(make_study) -> None:  # type: ignore[no-untyped-def]
    rs = make_study(consented=False)
    with pytest.raises(
        InputError, match=r"consent statement hash 'abc' is not the study's current"
    ):
        give_consent(rs.store, rs.principals["alice"], "abc")
    assert _count(rs, Consent) == 0


def test_monitors_do_not_consent_here(make_study) -> None:  # type: ignore[no-untyped-def]
    rs = make_study(consented=False)
    with pytest.raises(AccessError, match="has role 'monitor'"):
        consent_page(rs.store, rs.principals["monica"])


def test_an_amended_statement_is_asked_for_again(make_study, demo_copy: Path) -> None:  # type: ignore[no-untyped-def]
    rs = make_study()
    alice = rs.principals["alice"]
    assert next_item(rs.store, alice) is not None
    text = demo_copy.read_text()
    anchor = "  instructions:"
    assert anchor in text
    demo_copy.write_text(
        text.replace(anchor, "  consent: I agree to the amended terms of this study.\n" + anchor, 1)
    )
    amend(
        rs.store, load_study(demo_copy), reason="the ethics board changed the consent", actor="lead"
    )
    with pytest.raises(AccessError, match="consent first"):
        next_item(rs.store, alice)
    page = consent_page(rs.store, alice)
    assert page.given_at is None and page.statement == "I agree to the amended terms of this study."
    give_consent(rs.store, alice, page.statement_sha256)
    assert next_item(rs.store, alice) is not None
    assert _count(rs, Consent) == 3  # alice twice, bob once: nothing replaced
