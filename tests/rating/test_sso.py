"""Single sign-on: a provider's e-mail claim mapped to the same accounts as tokens."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from studyhub.errors import AuthError, InputError
from studyhub.rating import add_rater, list_raters, next_item, revoke_rater
from studyhub.rating.sso import authenticate_sso, link_sso
from studyhub.store.audit import verify_chain
from studyhub.store.models import AuditEvent, AuthAttempt, Rater
from tests.rating.conftest import STUDY, RatingStudy


def test_a_linked_address_signs_in_as_its_account_in_any_case(rs: RatingStudy) -> None:
    info = link_sso(rs.store, STUDY, "alice", "  Alice@Clinic.Example ", actor="lead")
    assert info.sso_identity == "alice@clinic.example"
    p = authenticate_sso(rs.store, STUDY, {"email": "ALICE@clinic.example", "email_verified": True})
    assert p == rs.principals["alice"]
    assert next_item(rs.store, p) is not None  # the same queue, consent and role as the token
    with rs.store.session() as s:
        (event,) = s.scalars(select(AuditEvent).where(AuditEvent.action == "rater_sso_link"))
        # The audit log names the account by pseudonym, never by name or address.
        assert json.loads(event.payload) == {
            "rater_id": p.rater_id,
            "pseudonym": f"rater-{p.rater_id}",
            "was_linked": False,
            "linked": True,
        }
        assert event.actor == "lead" and "alice" not in event.payload.lower()
        assert s.scalars(select(AuthAttempt.ok).order_by(AuthAttempt.id.desc())).first() is True
        assert verify_chain(s).ok


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"email": "nobody@clinic.example"}, "'nobody@clinic.example' has no active account"),
        ({}, "the identity provider sent no e-mail address"),
        ({"email": "alice@clinic.example", "email_verified": False}, "has not verified"),
        ({"email": "not-an-address"}, "'not-an-address' has no active account"),
    ],
)
def test_unmapped_or_unverified_identities_are_refused(
    rs: RatingStudy, claims: dict[str, object], message: str
) -> None:
    link_sso(rs.store, STUDY, "alice", "alice@clinic.example", actor="lead")
    with pytest.raises(AuthError, match=message):
        authenticate_sso(rs.store, STUDY, claims)


def test_a_revoked_account_is_refused_through_single_sign_on_too(rs: RatingStudy) -> None:
    link_sso(rs.store, STUDY, "bob", "bob@clinic.example", actor="lead")
    p = authenticate_sso(rs.store, STUDY, {"email": "bob@clinic.example"})
    revoke_rater(rs.store, STUDY, "bob", actor="lead")
    with pytest.raises(AuthError, match=r"'bob@clinic\.example' has no active account"):
        authenticate_sso(rs.store, STUDY, {"email": "bob@clinic.example"})
    with pytest.raises(AuthError, match="sign-in failed"):  # a session signed in before, too
        next_item(rs.store, p)


def test_one_address_links_one_account(rs: RatingStudy) -> None:
    link_sso(rs.store, STUDY, "alice", "shared@clinic.example", actor="lead")
    with pytest.raises(InputError, match="already linked to account 'alice'"):
        link_sso(rs.store, STUDY, "bob", "Shared@clinic.example", actor="lead")
    with pytest.raises(InputError, match="already linked to account 'alice'"):
        add_rater(
            rs.store,
            STUDY,
            "carol",
            role="monitor",
            sso_identity="shared@clinic.example",
            actor="lead",
        )
    link_sso(rs.store, STUDY, "alice", "shared@clinic.example", actor="lead")  # unchanged: fine
    with rs.store.session() as s:
        assert s.scalar(select(Rater.id).where(Rater.name == "carol")) is None


def test_unlinking_stops_single_sign_on_but_not_the_token(rs: RatingStudy) -> None:
    link_sso(rs.store, STUDY, "alice", "alice@clinic.example", actor="lead")
    assert link_sso(rs.store, STUDY, "alice", None, actor="lead").sso_identity is None
    with pytest.raises(AuthError, match="no active account"):
        authenticate_sso(rs.store, STUDY, {"email": "alice@clinic.example"})
    assert next_item(rs.store, rs.principals["alice"]) is not None


def test_bad_addresses_and_names_are_refused_with_the_fix(rs: RatingStudy) -> None:
    with pytest.raises(InputError, match=r"'jane' is not an e-mail address; .* --sso jane.doe@"):
        link_sso(rs.store, STUDY, "alice", "jane", actor="lead")
    with pytest.raises(InputError, match="has no account named 'zed'"):
        link_sso(rs.store, STUDY, "zed", "zed@clinic.example", actor="lead")


def test_the_cli_adds_links_lists_and_unlinks(rs: RatingStudy, cli, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("COLUMNS", "200")  # the table at full width
    url = rs.store.url
    res = cli(
        "--db", url, "rater", "add", "carol", "--role", "monitor", "--sso", "Carol@Clinic.example"
    )
    assert res.exit_code == 0 and "single sign-on: carol@clinic.example" in res.stdout
    res = cli("--db", url, "rater", "link", "alice", "--sso", "alice@clinic.example")
    assert res.exit_code == 0 and "'alice' signs in with alice@clinic.example" in res.stdout
    res = cli("--db", url, "rater", "list")
    assert "carol@clinic.example" in res.stdout and "alice@clinic.example" in res.stdout
    res = cli("--db", url, "rater", "link", "alice", "--unlink")
    assert res.exit_code == 0 and "no single sign-on link" in res.stdout
    res = cli("--db", url, "rater", "link", "alice")
    assert res.exit_code == 2 and "give exactly one of --sso ADDRESS" in res.stderr
    res = cli("--db", url, "rater", "link", "bob", "--sso", "carol@clinic.example")
    assert res.exit_code == 2 and "already linked to account 'carol'" in res.stderr
    identities = {r.name: r.sso_identity for r in list_raters(rs.store, STUDY)}
    assert identities == {
        "alice": None,
        "bob": None,
        "monica": None,
        "carol": "carol@clinic.example",
    }
