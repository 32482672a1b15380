"""A study in ``rating`` with raters, sessions and assignments inserted directly."""

from __future__ import annotations

import hashlib
import struct
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from studyhub.protocol import load_study
from studyhub.rating import accounts
from studyhub.rating.accounts import Principal, add_rater, authenticate
from studyhub.rating.consent import consent_page, give_consent
from studyhub.store import lifecycle
from studyhub.store.audit import append_event
from studyhub.store.db import Store
from studyhub.store.models import (
    Arm,
    Assignment,
    Case,
    ModelVersion,
    Prediction,
    ReadingSession,
    Response,
    Stimulus,
    Study,
    utcnow,
)
from studyhub.store.studies import register

STUDY = "inspection_demo"


def tiny_png(shade: int) -> bytes:
    """A valid 1x1 grey PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = zlib.compress(bytes([0, shade % 256]))
    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


@dataclass
class RatingStudy:
    store: Store
    tokens: dict[str, str]
    principals: dict[str, Principal]
    #: rater name -> assignment ids in serving order
    queue: dict[str, list[int]] = field(default_factory=dict)
    #: things a rater must never see
    secrets: set[str] = field(default_factory=set)


#: (session, position, kind) of every rater's queue; case index and arm index per item.
LAYOUT: list[tuple[int, int, str, int, int]] = [
    (1, 1, "training", 0, 0),
    (1, 2, "regular", 1, 1),
    (1, 3, "catch", 2, 2),
    (2, 1, "regular", 1, 3),
    (2, 2, "repeat", 1, 1),
]


def build_study(
    store: Store,
    protocol_path: Path,
    *,
    raters: tuple[str, ...] = ("alice", "bob"),
    layout: list[tuple[int, int, str, int, int]] | None = None,
    state: str = "rating",
    consented: bool = True,
) -> RatingStudy:
    register(store, load_study(protocol_path), actor="lead")
    with store.write() as s:
        study = s.get_one(Study, STUDY)
        lifecycle.advance(s, study, "enrolling", actor="lead")
    tokens: dict[str, str] = {}
    for name in raters:
        tokens[name] = add_rater(
            store, STUDY, name, role="rater", qualifications={"inspection_years": "4"}, actor="lead"
        ).token
    tokens["monica"] = add_rater(store, STUDY, "monica", role="monitor", actor="lead").token
    secrets: set[str] = set()
    queue: dict[str, list[int]] = {}
    with store.write() as s:
        now = utcnow()
        arms = list(s.scalars(select(Arm).where(Arm.study_id == STUDY).order_by(Arm.id)))
        secrets |= {a.arm_key for a in arms} | {a.method for a in arms}
        mv = ModelVersion(
            study_id=STUDY,
            entry_point="studyhub.demo.model:load",
            weights_sha256="0" * 64,
            created_at=now,
        )
        s.add(mv)
        s.flush()
        stimuli: dict[tuple[int, int], int] = {}
        for c in range(3):
            case = Case(
                study_id=STUDY,
                case_key=f"surface-{c:04d}-casekey",
                source=f"/data/secret/surface_{c}.png",
                image_sha256=hashlib.sha256(str(c).encode()).hexdigest(),
                label="pit",
                enrolled=True,
                enrolled_at=now,
            )
            s.add(case)
            s.flush()
            secrets |= {case.case_key, case.source, "pitting"}
            s.add(
                Prediction(
                    case_id=case.id,
                    model_version_id=mv.id,
                    predicted_label="crack",
                    probability_raw=0.9,
                    probability_calibrated=0.87,
                    created_at=now,
                )
            )
            for k, arm in enumerate(arms):
                stim = Stimulus(
                    study_id=STUDY,
                    case_id=case.id,
                    arm_id=arm.id,
                    code=f"C{c}{k}X7Q2ZK",
                    image_png=tiny_png(10 * c + k),
                    original_png=tiny_png(200 + c),
                    overlay_png=tiny_png(100 + k),
                    provenance={"arm": arm.arm_key, "method": arm.method},
                    metrics={"deletion_auc": 0.5},
                    narrative=f"The highlight covers the crack region ({k}).",
                    created_at=now,
                )
                s.add(stim)
                s.flush()
                stimuli[(c, k)] = stim.id
        from studyhub.store.models import Rater

        for name in raters:
            rater = s.scalars(select(Rater).where(Rater.name == name)).one()
            sessions: dict[int, ReadingSession] = {}
            ids: list[int] = []
            by_pos: dict[tuple[int, int], Assignment] = {}
            for number, position, kind, c, k in layout or LAYOUT:
                if number not in sessions:
                    sessions[number] = ReadingSession(
                        study_id=STUDY, rater_id=rater.id, number=number
                    )
                    s.add(sessions[number])
                    s.flush()
                a = Assignment(
                    study_id=STUDY,
                    rater_id=rater.id,
                    session_id=sessions[number].id,
                    stimulus_id=stimuli[(c, k)],
                    position=position,
                    kind=kind,
                    expected=(
                        {"prompt": "Please answer 2 for usefulness.", "answers": {"usefulness": 2}}
                        if kind == "catch"
                        else None
                    ),
                    repeat_of_id=by_pos[(1, 2)].id if kind == "repeat" else None,
                )
                s.add(a)
                s.flush()
                by_pos[(number, position)] = a
                ids.append(a.id)
            queue[name] = ids
        study = s.get_one(Study, STUDY)
        append_event(s, actor="lead", action="test_setup", study_id=STUDY)
        if state == "rating":
            lifecycle.advance(s, study, "rating", actor="lead")
    principals = {n: authenticate(store, STUDY, t) for n, t in tokens.items()}
    if consented:
        for name in raters:
            page = consent_page(store, principals[name])
            give_consent(store, principals[name], page.statement_sha256)
    return RatingStudy(store, tokens, principals, queue, secrets)


@pytest.fixture
def make_study(
    store: Store, demo_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., RatingStudy]:
    """Build one study per test (``washout_days`` patched into the demo protocol)."""
    # Still argon2id, at the lowest cost: the service tests sign in often, and the
    # production cost (about 0.3 s a hash here) is exercised in test_accounts.py.
    cheap = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    monkeypatch.setattr(accounts, "_HASHER", cheap)

    def make(*, washout_days: int = 0, **kwargs: Any) -> RatingStudy:
        text = demo_copy.read_text().replace("washout_days: 0", f"washout_days: {washout_days}")
        demo_copy.write_text(text)
        return build_study(store, demo_copy, **kwargs)

    return make


@pytest.fixture
def rs(make_study: Callable[..., RatingStudy]) -> RatingStudy:
    return make_study()


GOOD = {"usefulness": 4, "plausible": "yes"}


def new_key() -> str:
    """A fresh idempotency key."""
    return uuid.uuid4().hex


def answer_next(rs: RatingStudy, name: str, answers=None, **kw):  # type: ignore[no-untyped-def]
    """Serve ``name``'s next item and submit ``answers`` (GOOD by default) to it."""
    from studyhub.rating import next_item, submit

    p = rs.principals[name]
    item = next_item(rs.store, p)
    assert item is not None
    kw.setdefault("time_on_task_ms", 4200)
    kw.setdefault("idempotency_key", new_key())
    return item, submit(rs.store, p, item.assignment_id, answers or GOOD, **kw)


def stored_responses(rs: RatingStudy) -> list[Response]:
    """Every response row, in insertion order."""
    with rs.store.session() as s:
        return list(s.scalars(select(Response).order_by(Response.id)))
