"""Sign-in backoff and the cap on concurrent argon2 checks: slow an attacker, never lock out.

Threat model
------------
A token is ``<hint>.<secret>``: the hint is public (``studyhub rater list``, audit
payloads), the secret has 192 random bits, so guessing one online is hopeless
and throttling is not what keeps tokens safe. What throttling must stop is
using sign-in as a weapon: against the server (each real check is an argon2id
hash of 64 MiB and about 0.3 s) and against the people who hold tokens (a
lockout that an attacker can trigger locks the rater out, not the attacker).

An attacker can send any number of guesses, with the victim's hint or made-up
ones, from many addresses and threads at once. An attacker on another address
cannot make a token holder wait: every delay is counted from the last failure
*of the asking client with that hint* (the pair), a pair with no recent
failure is checked at once, and failures elsewhere can only make a pair's
delay longer (up to :data:`MAX_DELAY`), never move the moment it ends.

Failures are counted in :data:`THROTTLE_WINDOW` under three keys
(:func:`signin_keys`): the pair (client address and hint), the client (every
hint from that address) and the account (the hint, from every address).

- A pair that failed waits :func:`backoff` of its own failures or the
  account's, whichever are more, after its own last failure: the first
  :data:`FREE_FAILURES` cost nothing, then 1 s, 2 s, 4 s ... up to
  :data:`MAX_DELAY`. A success clears the failures before it of its pair and
  of its account (the holder proved it is them); an attacker's pair keeps its
  own count.
- A client past :data:`CLIENT_ALLOWANCE` failures waits the same way after its
  own last failure, whatever the hint, so one address cannot flood sign-in.
  The allowance is large so that the people behind one shared address (a
  hospital's NAT) are not slowed by each other's typos.
- A refused attempt is not recorded: it neither lengthens nor renews a wait.

What remains: someone who shares the victim's address *and* guesses the
victim's hint is indistinguishable from the victim and can keep that one
pair slow (a rater can then sign in from another network, by single sign-on,
or with a new token); someone who floods from one shared address past the
allowance keeps everyone behind it waiting, up to :data:`MAX_DELAY` at a time,
for as long as the flood lasts (the people there can use another network or
single sign-on, and the flood shows in the ``auth_attempt`` table).

On top of the backoff, :class:`VerifyGate` allows at most
:data:`MAX_CONCURRENT_CHECKS` argon2 checks at once per process; a sign-in
that finds no free slot within :data:`BUSY_WAIT` is refused with
:data:`SIGNIN_BUSY` instead of queueing, so many attackers at once cost
bounded memory. A hint that names no account is refused without any argon2
work (:meth:`VerifyGate.imitate` only waits about as long as a check takes).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from studyhub.errors import AuthError
from studyhub.store.models import AuthAttempt

__all__ = [
    "BASE_DELAY",
    "BUSY_WAIT",
    "CLIENT_ALLOWANCE",
    "FREE_FAILURES",
    "MAX_CONCURRENT_CHECKS",
    "MAX_DELAY",
    "SIGNIN_BUSY",
    "SIGNIN_GATE",
    "THROTTLE_WINDOW",
    "SigninKeys",
    "VerifyGate",
    "attempt_key",
    "backoff",
    "record_attempt",
    "refuse_while_backing_off",
    "signin_keys",
    "wait_seconds",
]

#: How far back failures count.
THROTTLE_WINDOW: Final = dt.timedelta(minutes=15)
#: Failures of a key that cost no delay (typos).
FREE_FAILURES: Final = 3
#: Failures from one client address, over all hints, before the client as a whole is slowed.
CLIENT_ALLOWANCE: Final = 20
#: The first delay, doubled with each further failure.
BASE_DELAY: Final = 1.0
#: The longest delay, in seconds: there is no lockout.
MAX_DELAY: Final = 30.0
#: argon2 checks allowed at once in one process (64 MiB each).
MAX_CONCURRENT_CHECKS: Final = 4
#: Seconds a sign-in waits for a free check before it is refused as busy.
BUSY_WAIT: Final = 2.0
#: The refusal when every check slot stays taken.
SIGNIN_BUSY: Final = (
    "sign-in is busy: too many sign-ins are being checked at once; try again in a moment"
)
# How long one argon2id check (RFC 9106 second profile) takes before any was measured.
_FIRST_ESTIMATE = 0.3


def attempt_key(kind: str, value: str) -> str:
    """Attempt keys are hashed: a client address is personal data, a hint is input."""
    return hashlib.sha256(f"{kind}:{value}".encode()).hexdigest()


@dataclass(frozen=True)
class SigninKeys:
    """The three keys one sign-in attempt is counted under (hashed, see :func:`attempt_key`)."""

    pair: str
    client: str
    account: str

    def all(self) -> tuple[str, str, str]:
        """The keys in the order they are recorded."""
        return (self.pair, self.client, self.account)


def signin_keys(hint: str, client: str) -> SigninKeys:
    """The keys of an attempt with ``hint`` from ``client`` (``""``: address unknown)."""
    return SigninKeys(
        pair=attempt_key("pair", f"{client}\x00{hint}"),
        client=attempt_key("client", client),
        account=attempt_key("hint", hint),
    )


def backoff(failures: int, free: int = FREE_FAILURES) -> float:
    """Seconds to wait after the last of ``failures``: 0 up to ``free``, then doubling, capped.

    Examples
    --------
    >>> [backoff(n) for n in range(3, 11)]
    [0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    """
    if failures <= free:
        return 0.0
    return min(MAX_DELAY, BASE_DELAY * 2.0 ** min(failures - free - 1, 32))


def _failures(
    s: Session, study_id: str, key: str, since: dt.datetime
) -> tuple[int, dt.datetime | None]:
    """How many failures of ``key`` lie after ``since``, and the last one's time."""
    row = s.execute(
        select(func.count(AuthAttempt.id), func.max(AuthAttempt.at)).where(
            AuthAttempt.study_id == study_id,
            AuthAttempt.key == key,
            AuthAttempt.ok.is_(False),
            AuthAttempt.at > since,
        )
    ).one()
    return int(row[0] or 0), row[1]


def wait_seconds(s: Session, study_id: str, keys: SigninKeys, now: dt.datetime) -> float:
    """Seconds until an attempt under ``keys`` may be checked (0: at once).

    See the module's docstring for the rules.
    """
    since = now - THROTTLE_WINDOW
    wait = 0.0
    pair_n, pair_last = _failures(s, study_id, keys.pair, _cleared(s, study_id, keys.pair, since))
    if pair_n and pair_last is not None:
        account_since = _cleared(s, study_id, keys.account, since)
        account_n, _ = _failures(s, study_id, keys.account, account_since)
        delay = backoff(max(pair_n, account_n))
        wait = max(wait, (pair_last - now).total_seconds() + delay)
    client_n, client_last = _failures(s, study_id, keys.client, since)
    if client_n > CLIENT_ALLOWANCE and client_last is not None:
        delay = backoff(client_n - CLIENT_ALLOWANCE + FREE_FAILURES)
        wait = max(wait, (client_last - now).total_seconds() + delay)
    return max(0.0, wait)


def _cleared(s: Session, study_id: str, key: str, since: dt.datetime) -> dt.datetime:
    """Since when failures of ``key`` count: the window's start or its last success."""
    success = s.scalar(
        select(func.max(AuthAttempt.at)).where(
            AuthAttempt.study_id == study_id,
            AuthAttempt.key == key,
            AuthAttempt.ok.is_(True),
            AuthAttempt.at > since,
        )
    )
    return since if success is None else max(since, success)


def refuse_while_backing_off(s: Session, study_id: str, keys: SigninKeys, now: dt.datetime) -> None:
    """Raise the "wait N seconds" refusal while ``keys`` are backing off.

    Raises
    ------
    AuthError
        Saying how many seconds to wait; it does not say which part was wrong.
    """
    wait = wait_seconds(s, study_id, keys, now)
    if wait > 0:
        seconds = max(1, int(-(-wait // 1)))
        raise AuthError(
            "sign-in paused: there were failed attempts with this token or from this device; "
            f"wait {seconds} second{'s' if seconds != 1 else ''} and try again"
        )


def record_attempt(
    s: Session, study_id: str, keys: SigninKeys, now: dt.datetime
) -> list[AuthAttempt]:
    """Record an attempt under each key as a failure (a verified one is marked ok after)."""
    attempts = [AuthAttempt(study_id=study_id, key=k, ok=False, at=now) for k in keys.all()]
    s.add_all(attempts)
    s.flush()
    return attempts


class VerifyGate:
    """At most ``limit`` argon2 checks at once in this process, counted and timed.

    Parameters
    ----------
    limit : int
        Checks allowed at once (each holds 64 MiB for about 0.3 s).
    wait : float
        Seconds a check waits for a free slot before :meth:`slot` refuses.

    Attributes
    ----------
    in_flight, peak : int
        Slots taken now, and the most ever taken at once.
    checks, busy : int
        Checks measured (:meth:`observe`), and sign-ins refused as busy.
    """

    def __init__(self, limit: int = MAX_CONCURRENT_CHECKS, wait: float = BUSY_WAIT) -> None:
        self.limit = limit
        self.wait = wait
        self._slots = threading.BoundedSemaphore(limit)
        self._lock = threading.Lock()
        self.in_flight = 0
        self.peak = 0
        self.checks = 0
        self.busy = 0
        self._estimate = _FIRST_ESTIMATE

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one of the slots for a check.

        Raises
        ------
        AuthError
            With :data:`SIGNIN_BUSY` when no slot frees within ``wait`` seconds.
        """
        if not self._slots.acquire(timeout=self.wait):
            with self._lock:
                self.busy += 1
            raise AuthError(SIGNIN_BUSY)
        with self._lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        try:
            yield
        finally:
            with self._lock:
                self.in_flight -= 1
            self._slots.release()

    def observe(self, seconds: float) -> None:
        """Count one check that took ``seconds`` (kept as a moving average)."""
        with self._lock:
            self.checks += 1
            self._estimate = 0.8 * self._estimate + 0.2 * seconds

    def imitate(self) -> None:
        """Wait about as long as a check takes, taking no slot and doing no argon2 work.

        A refusal that needs no check (a hint that names no account) then takes
        about as long as one that does, give or take the spread of real checks.
        """
        with self._lock:
            estimate = self._estimate
        time.sleep(estimate * random.uniform(0.85, 1.15))


#: The process's gate; every token sign-in goes through it.
SIGNIN_GATE = VerifyGate()
