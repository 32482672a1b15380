"""Sign-in backoff and the cap on argon2 checks: attackers are slowed, token holders are not."""

from __future__ import annotations

import datetime as dt
import secrets
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from studyhub.errors import AuthError
from studyhub.protocol import load_study
from studyhub.rating import accounts, throttle
from studyhub.rating.accounts import AUTH_FAILED, NewRater, add_rater, authenticate
from studyhub.rating.throttle import (
    CLIENT_ALLOWANCE,
    MAX_CONCURRENT_CHECKS,
    MAX_DELAY,
    SIGNIN_BUSY,
    VerifyGate,
    backoff,
    record_attempt,
    signin_keys,
    wait_seconds,
)
from studyhub.store.db import Store
from studyhub.store.models import AuthAttempt, utcnow
from studyhub.store.studies import register

STUDY = "inspection_demo"
JOIN_S = 120  # only keeps a regression from hanging the suite


@pytest.fixture
def registered(store: Store, demo_copy: Path) -> Store:
    register(store, load_study(demo_copy), actor="lead")
    return store


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> VerifyGate:
    """A fresh gate (default limit), so its counters start at zero."""
    fresh = VerifyGate()
    monkeypatch.setattr(throttle, "SIGNIN_GATE", fresh)
    return fresh


class Watched:
    """The real verifier, wrapped to count the checks running at once (test only)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.real: Callable[[str, str], bool] = accounts._verify
        self.lock = threading.Lock()
        self.now = self.most = self.calls = 0
        monkeypatch.setattr(accounts, "_verify", self)

    def __call__(self, token_hash: str, token: str) -> bool:
        with self.lock:
            self.now += 1
            self.calls += 1
            self.most = max(self.most, self.now)
        try:
            return self.real(token_hash, token)
        finally:
            with self.lock:
                self.now -= 1


def _add(store: Store, name: str = "alice") -> NewRater:
    return add_rater(
        store, STUDY, name, role="rater", qualifications={"inspection_years": "4"}, actor="lead"
    )


def _wrong(new: NewRater) -> str:
    return new.hint + "." + "W" * 32


def _age(store: Store, seconds: float) -> None:
    """Move every recorded attempt ``seconds`` into the past (as if that time had passed)."""
    with store.write() as s:
        for row in s.scalars(select(AuthAttempt)):
            row.at = row.at - dt.timedelta(seconds=seconds)


def _just_now(store: Store) -> None:
    """Move the latest attempt to this instant, so a check right after sees the whole delay."""
    with store.write() as s:
        latest = s.scalar(select(func.max(AuthAttempt.at)))
        s.execute(update(AuthAttempt).where(AuthAttempt.at == latest).values(at=utcnow()))


def _rows(store: Store) -> int:
    with store.session() as s:
        return int(s.scalar(select(func.count(AuthAttempt.id))) or 0)


def test_backoff_is_free_for_typos_then_doubles_up_to_the_cap() -> None:
    assert [backoff(n) for n in range(0, 11)] == [0, 0, 0, 0, 1, 2, 4, 8, 16, 30, 30]
    assert backoff(10_000) == MAX_DELAY  # no lockout, however many failures


def test_a_failing_device_waits_longer_each_time_and_is_never_locked_out(
    registered: Store, gate: VerifyGate
) -> None:
    new = _add(registered)
    keys = signin_keys(new.hint, "203.0.113.5")
    for want in [0, 0, 0, 1, 2, 4, 8, 16, 30, 30]:
        with pytest.raises(AuthError) as exc:
            authenticate(registered, STUDY, _wrong(new), client="203.0.113.5")
        assert str(exc.value) == AUTH_FAILED  # it was checked, not refused unseen
        with registered.session() as s:
            last = s.scalar(select(func.max(AuthAttempt.at)))
            assert last is not None and wait_seconds(s, STUDY, keys, last) == want
        if want:
            # even the right token waits on this device: the device is what is slowed
            _just_now(registered)
            unit = "second" if want == 1 else "seconds"
            with pytest.raises(AuthError, match=rf"^sign-in paused: .* wait {want:g} {unit} "):
                authenticate(registered, STUDY, new.token, client="203.0.113.5")
            _age(registered, want)
    assert gate.checks == 10  # the refusals cost no argon2 check
    assert authenticate(registered, STUDY, new.token, client="203.0.113.5").name == "alice"
    # a success clears the pair's failures: the next typo is free again
    with pytest.raises(AuthError, match=r"^sign-in failed"):
        authenticate(registered, STUDY, _wrong(new), client="203.0.113.5")
    with pytest.raises(AuthError, match=r"^sign-in failed"):
        authenticate(registered, STUDY, _wrong(new), client="203.0.113.5")


def test_failures_elsewhere_never_delay_the_holder_on_their_own_device(
    registered: Store, gate: VerifyGate
) -> None:
    new = _add(registered)
    for n in range(8):  # the victim's public hint, from two addresses
        _age(registered, MAX_DELAY)
        with pytest.raises(AuthError, match=r"^sign-in failed"):
            authenticate(registered, STUDY, _wrong(new), client=f"192.0.2.{n % 2}")
    _just_now(registered)
    with pytest.raises(AuthError, match="sign-in paused"):  # the attacker's device waits
        authenticate(registered, STUDY, _wrong(new), client="192.0.2.1")
    assert authenticate(registered, STUDY, new.token, client="198.51.100.7").name == "alice"


def test_failures_from_a_shared_address_do_not_stop_the_others_behind_it(
    registered: Store, gate: VerifyGate
) -> None:
    new = _add(registered)
    for n in range(6):  # someone behind the same NAT mistypes other tokens
        with pytest.raises(AuthError, match=r"^sign-in failed"):
            authenticate(registered, STUDY, f"{n:08x}." + "Z" * 32, client="203.0.113.5")
    assert authenticate(registered, STUDY, new.token, client="203.0.113.5").name == "alice"


def test_a_client_past_its_allowance_is_slowed_for_every_hint(
    registered: Store, gate: VerifyGate
) -> None:
    new = _add(registered)
    with registered.write() as s:  # a flood of made-up hints from one address, as recorded
        for _ in range(CLIENT_ALLOWANCE + 5):
            record_attempt(s, STUDY, signin_keys(secrets.token_hex(4), "203.0.113.9"), utcnow())
    keys = signin_keys(new.hint, "203.0.113.9")
    with registered.session() as s:
        last = s.scalar(select(func.max(AuthAttempt.at)))
        assert last is not None and wait_seconds(s, STUDY, keys, last) == backoff(8) == 16
    with pytest.raises(AuthError, match=r"^sign-in paused: .* wait \d+ seconds "):
        authenticate(registered, STUDY, new.token, client="203.0.113.9")
    assert authenticate(registered, STUDY, new.token, client="198.51.100.7").name == "alice"
    _age(registered, 16)
    assert authenticate(registered, STUDY, new.token, client="203.0.113.9").name == "alice"


def test_refused_attempts_are_not_recorded_and_do_not_renew_the_wait(
    registered: Store, gate: VerifyGate
) -> None:
    new = _add(registered)
    for _ in range(5):
        _age(registered, MAX_DELAY)
        with pytest.raises(AuthError, match=r"^sign-in failed"):
            authenticate(registered, STUDY, _wrong(new))
    _just_now(registered)
    before = _rows(registered)
    for _ in range(5):
        with pytest.raises(AuthError, match="wait 2 seconds"):
            authenticate(registered, STUDY, new.token)
    assert _rows(registered) == before
    _age(registered, 2)
    assert authenticate(registered, STUDY, new.token).name == "alice"


@pytest.mark.parametrize("token", ["0badc0de." + "Q" * 32, "garbage", ""])
def test_an_unknown_hint_costs_no_argon2_check_and_reads_like_a_wrong_secret(
    registered: Store, gate: VerifyGate, monkeypatch: pytest.MonkeyPatch, token: str
) -> None:
    new = _add(registered)
    watched = Watched(monkeypatch)
    with pytest.raises(AuthError) as unknown:
        authenticate(registered, STUDY, token, client="192.0.2.7")
    assert watched.calls == 0 and gate.checks == 0 and gate.peak == 0
    assert _rows(registered) == 3  # recorded like any failure: it counts toward the backoff
    with pytest.raises(AuthError) as wrong:
        authenticate(registered, STUDY, _wrong(new), client="192.0.2.7")
    assert watched.calls == 1 and gate.checks == 1
    assert str(unknown.value) == str(wrong.value) == AUTH_FAILED


def test_a_full_gate_answers_busy_and_records_nothing(
    registered: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    new = _add(registered)
    small = VerifyGate(limit=1, wait=0.05)
    monkeypatch.setattr(throttle, "SIGNIN_GATE", small)
    with small.slot(), pytest.raises(AuthError) as exc:  # another sign-in holds the only slot
        authenticate(registered, STUDY, new.token, client="198.51.100.7")
    assert str(exc.value) == SIGNIN_BUSY and "try again in a moment" in SIGNIN_BUSY
    assert small.busy == 1 and _rows(registered) == 0
    assert authenticate(registered, STUDY, new.token, client="198.51.100.7").name == "alice"


def test_concurrent_argon2_checks_stay_within_the_gate(
    registered: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    new = _add(registered)
    small = VerifyGate(limit=2, wait=JOIN_S)  # wait long: every guess is checked, two at a time
    monkeypatch.setattr(throttle, "SIGNIN_GATE", small)
    watched = Watched(monkeypatch)
    start = threading.Barrier(8)
    outcomes: list[str] = []

    def guess(n: int) -> None:
        start.wait()
        try:
            authenticate(registered, STUDY, _wrong(new), client=f"192.0.2.{n}")
        except AuthError as exc:
            outcomes.append(str(exc))

    threads = [threading.Thread(target=guess, args=(n,), daemon=True) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN_S)
    assert not any(t.is_alive() for t in threads)
    assert outcomes == [AUTH_FAILED] * 8  # each from a fresh device: checked, not delayed
    assert watched.calls == small.checks == 8
    assert watched.most <= 2 and small.peak <= 2


def test_fifty_guesses_from_an_attacker_while_the_right_rater_signs_in(
    registered: Store, gate: VerifyGate, monkeypatch: pytest.MonkeyPatch
) -> None:
    victim = _add(registered)
    _add(registered, "bob")
    watched = Watched(monkeypatch)
    lock = threading.Lock()
    issued = 0
    outcomes: Counter[str] = Counter()
    underway = threading.Event()  # a third of the guesses are in
    signed_in = threading.Event()
    signins: list[str] = []

    def attack() -> None:
        nonlocal issued
        while True:
            with lock:
                n, issued = issued, issued + 1
            if n >= 50:
                return
            if n >= 35:  # the rest only once the rater has signed in: it overlaps the attack
                signed_in.wait(JOIN_S)
            hint = victim.hint if n % 2 == 0 else secrets.token_hex(4)
            try:
                authenticate(
                    registered,
                    STUDY,
                    f"{hint}.{secrets.token_urlsafe(24)}",
                    client=f"192.0.2.{n % 5}",
                )
                kind = "signed in"
            except AuthError as exc:
                kind = str(exc).split(":")[0]
            with lock:
                outcomes[kind] += 1
                if sum(outcomes.values()) >= 15:
                    underway.set()

    attackers = [threading.Thread(target=attack, daemon=True) for _ in range(3)]
    for t in attackers:
        t.start()
    try:
        assert underway.wait(JOIN_S)
        signins.append(authenticate(registered, STUDY, victim.token, client="198.51.100.7").name)
    finally:
        signed_in.set()
    for t in attackers:
        t.join(JOIN_S)
    assert not any(t.is_alive() for t in attackers)
    signins.append(authenticate(registered, STUDY, victim.token, client="198.51.100.7").name)
    assert signins == ["alice", "alice"]
    assert sum(outcomes.values()) == 50 and "signed in" not in outcomes
    assert set(outcomes) <= {"sign-in failed", "sign-in paused", "sign-in is busy"}
    assert outcomes["sign-in paused"] > 0  # the attacker's devices were slowed
    # made-up hints cost no check: at most the 25 guesses with the victim's hint did
    assert watched.calls == gate.checks <= 25 + 2
    assert watched.most <= MAX_CONCURRENT_CHECKS
