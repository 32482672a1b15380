"""Rater accounts: one-time tokens, argon2 hashes, revocation, sign-in, the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from studyhub.errors import AuthError, InputError, LifecycleError
from studyhub.protocol import load_study
from studyhub.rating.accounts import (
    AUTH_FAILED,
    add_rater,
    authenticate,
    list_raters,
    revoke_rater,
)
from studyhub.store import lifecycle
from studyhub.store.audit import verify_chain
from studyhub.store.models import AuditEvent, AuthAttempt, Rater, Study
from studyhub.store.studies import register

STUDY = "inspection_demo"


@pytest.fixture
def registered(store, demo_copy: Path):  # type: ignore[no-untyped-def]
    register(store, load_study(demo_copy), actor="lead")
    return store


def _add(store, name: str = "alice", **kw):  # type: ignore[no-untyped-def]
    kw.setdefault("role", "rater")
    kw.setdefault("qualifications", {"inspection_years": "4"})
    return add_rater(store, STUDY, name, actor="lead", **kw)


def test_token_is_hint_dot_secret_and_only_an_argon2_hash_is_stored(registered) -> None:  # type: ignore[no-untyped-def]
    new = _add(registered)
    hint, _, secret = new.token.partition(".")
    assert hint == new.hint and len(hint) == 8 and len(secret) >= 32
    with registered.session() as s:
        row = s.get_one(Rater, new.rater_id)
        assert row.token_hint == hint
        assert row.token_hash.startswith("$argon2id$")
        assert new.token not in row.token_hash and secret not in row.token_hash
        assert PasswordHasher().verify(row.token_hash, new.token)
        assert row.qualifications == {"inspection_years": 4.0}
        # the token appears in no stored row: not in the audit log either
        for ev in s.scalars(select(AuditEvent)):
            assert secret not in ev.payload
    p = authenticate(registered, STUDY, new.token, client="10.0.0.1")
    assert (p.rater_id, p.name, p.role, p.study_id) == (new.rater_id, "alice", "rater", STUDY)


def test_two_accounts_get_different_salts_and_tokens(registered) -> None:  # type: ignore[no-untyped-def]
    a, b = _add(registered, "alice"), _add(registered, "bob")
    assert a.token != b.token and a.hint != b.hint
    with registered.session() as s:
        ha, hb = (s.get_one(Rater, x.rater_id).token_hash for x in (a, b))
    assert ha != hb


@pytest.mark.parametrize(
    "token",
    ["", "garbage", "deadbeef.nope", "00000000." + "A" * 32],
)
def test_malformed_and_unknown_tokens_get_the_generic_message(registered, token: str) -> None:  # type: ignore[no-untyped-def]
    _add(registered)
    with pytest.raises(AuthError) as exc:
        authenticate(registered, STUDY, token)
    assert str(exc.value) == AUTH_FAILED


def test_wrong_secret_and_revoked_get_the_same_message(registered) -> None:  # type: ignore[no-untyped-def]
    new = _add(registered)
    wrong = new.hint + "." + "B" * 32
    with pytest.raises(AuthError) as wrong_exc:
        authenticate(registered, STUDY, wrong)
    revoke_rater(registered, STUDY, "alice", actor="lead")
    with pytest.raises(AuthError) as revoked_exc:
        authenticate(registered, STUDY, new.token)
    assert str(wrong_exc.value) == str(revoked_exc.value) == AUTH_FAILED
    assert "revoked" not in AUTH_FAILED and "unknown" not in AUTH_FAILED


def test_a_token_of_another_study_is_refused(registered) -> None:  # type: ignore[no-untyped-def]
    new = _add(registered)
    with pytest.raises(AuthError, match="sign-in failed"):
        authenticate(registered, "other_study", new.token)


def test_attempts_are_recorded_with_hashed_keys(registered) -> None:  # type: ignore[no-untyped-def]
    new = _add(registered)
    authenticate(registered, STUDY, new.token, client="10.0.0.9")
    with pytest.raises(AuthError):
        authenticate(registered, STUDY, new.hint + ".wrongwrongwrongwrong", client="10.0.0.9")
    with registered.session() as s:
        rows = list(s.scalars(select(AuthAttempt).order_by(AuthAttempt.id)))
    # the pair (client and hint), the client and the account: each once per attempt
    assert [r.ok for r in rows] == [True] * 3 + [False] * 3
    assert [r.key for r in rows[:3]] == [r.key for r in rows[3:]] and len(
        {r.key for r in rows}
    ) == 3
    assert all("10.0.0.9" not in r.key and new.hint not in r.key for r in rows)


@pytest.mark.parametrize(
    ("quals", "message"),
    [
        ({}, "missing qualification 'inspection_years'.*--qual inspection_years=1"),
        ({"inspection_years": "0.5"}, "0.5 years, below the protocol's minimum of 1"),
        ({"inspection_years": "many"}, "is 'many'; give a number of years"),
        ({"inspection_years": "3", "board": "yes"}, "unknown qualification 'board'"),
    ],
)
def test_qualifications_are_checked_against_the_protocol(registered, quals, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match=message):
        _add(registered, qualifications=quals)
    assert list_raters(registered, STUDY) == []


def test_monitors_need_no_qualifications(registered) -> None:  # type: ignore[no-untyped-def]
    assert _add(registered, "monica", role="monitor", qualifications={}).role == "monitor"


def test_bad_role_duplicate_name_and_closed_study(registered) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match="role is 'owner'; use one of rater, monitor, admin"):
        _add(registered, role="owner")
    _add(registered)
    with pytest.raises(InputError, match="already has an account named 'alice'"):
        _add(registered)
    with registered.write() as s:
        study = s.get_one(Study, STUDY)
        for state in ("enrolling", "rating", "closed"):
            lifecycle.advance(s, study, state, actor="lead")
    with pytest.raises(LifecycleError, match="cannot add raters"):
        _add(registered, "carol")


def test_revoke_is_audited_and_idempotent(registered) -> None:  # type: ignore[no-untyped-def]
    _add(registered)
    first = revoke_rater(registered, STUDY, "alice", actor="lead")
    second = revoke_rater(registered, STUDY, "alice", actor="lead")
    assert first.revoked_at is not None and second.revoked_at == first.revoked_at
    with registered.session() as s:
        actions = [e.action for e in s.scalars(select(AuditEvent).order_by(AuditEvent.seq))]
        assert actions.count("rater_revoke") == 1
        assert verify_chain(s).ok
    with pytest.raises(InputError, match="no account named 'zed' \\(accounts: alice\\)"):
        revoke_rater(registered, STUDY, "zed", actor="lead")


def test_cli_add_prints_the_token_once_and_list_never_does(cli, demo_copy: Path, tmp_path) -> None:  # type: ignore[no-untyped-def]
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    assert cli("--db", db, "register", "--no-preflight", str(demo_copy)).exit_code == 0
    added = cli(
        "--db", db, "--actor", "lead", "rater", "add", "alice", "--qual", "inspection_years=3"
    )
    assert added.exit_code == 0, added.output
    tokens = [w for w in added.stdout.split() if "." in w and len(w) > 30]
    assert len(tokens) == 1 and added.stdout.count(tokens[0]) == 1
    assert "shown once" in added.stdout
    from studyhub.store.db import open_store

    store = open_store(db)
    try:
        assert authenticate(store, STUDY, tokens[0]).name == "alice"
    finally:
        store.dispose()
    listed = cli("--db", db, "rater", "list")
    assert listed.exit_code == 0 and "alice" in listed.stdout
    assert tokens[0] not in listed.stdout and tokens[0].split(".")[1] not in listed.stdout
    assert tokens[0].split(".")[0] in listed.stdout  # the hint is public
    bad = cli("--db", db, "rater", "add", "bob", "--qual", "inspection_years=0")
    assert bad.exit_code == 2 and "below the protocol's minimum of 1" in bad.stderr
    malformed = cli("--db", db, "rater", "add", "bob", "--qual", "inspection_years")
    assert malformed.exit_code == 2 and "is not id=value" in malformed.stderr
    revoked = cli("--db", db, "rater", "revoke", "alice")
    assert revoked.exit_code == 0 and "revoked 'alice'" in revoked.stdout
    store = open_store(db)
    try:
        with pytest.raises(AuthError, match="sign-in failed"):
            authenticate(store, STUDY, tokens[0])
    finally:
        store.dispose()
