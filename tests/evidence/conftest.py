"""A closed study rated through the service layer by scripted raters.

Cases, predictions and stimuli are inserted directly (tiny PNGs: the explain
step has its own tests); raters, assignment, consent, every answer and a
correction go through the real ``studyhub.rating`` service layer and
``assign_study``, so the data the evidence step reads is what a real study holds.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from studyhub.blinding.assign import assign_study
from studyhub.protocol import load_study
from studyhub.rating import accounts
from studyhub.rating.accounts import add_rater, authenticate
from studyhub.rating.consent import consent_page, give_consent
from studyhub.rating.respond import correct, submit
from studyhub.rating.serve import next_item
from studyhub.store import lifecycle
from studyhub.store.audit import append_event
from studyhub.store.db import Store
from studyhub.store.models import (
    Arm,
    Assignment,
    Case,
    ModelVersion,
    Prediction,
    Stimulus,
    Study,
    utcnow,
)
from studyhub.store.studies import close, register
from tests.rating.conftest import tiny_png

STUDY = "inspection_demo"
LABELS = ("none", "crack", "scratch", "pit")
#: The latent usefulness each arm adds (ig best, controls worst).
ARM_EFFECT = {"ig": 1.2, "gradcam": 1.0, "random_map": -0.6, "randomized_model": -0.4}


@dataclass
class Rated:
    store: Store
    protocol_path: Path
    names: list[str]
    tokens: dict[str, str]
    n_cases: int


def _insert_cases(store: Store, n_cases: int, rng: np.random.Generator) -> None:
    with store.write() as s:
        study = s.get_one(Study, STUDY)
        lifecycle.advance(s, study, "enrolling", actor="lead")
        now = utcnow()
        mv = ModelVersion(
            study_id=STUDY,
            entry_point="studyhub.demo.model:load",
            weights_sha256="ab" * 32,
            temperature=1.3,
            ece_before=0.08,
            ece_after=0.03,
            created_at=now,
        )
        s.add(mv)
        s.flush()
        arms = list(s.scalars(select(Arm).where(Arm.study_id == STUDY).order_by(Arm.id)))
        for c in range(n_cases):
            label = LABELS[c % 4]
            predicted = label if c % 5 else LABELS[(c + 1) % 4]
            case = Case(
                study_id=STUDY,
                case_key=f"secret-key-{c:03d}",
                source=f"/data/hospital/patient_{c}.png",
                image_sha256=hashlib.sha256(f"img{c}".encode()).hexdigest(),
                label=label,
                split="test",
                meta={"lighting": "dim" if c % 2 else "bright"},
                enrolled=True,
                enrollment_order=c,
                enrolled_at=now,
            )
            s.add(case)
            s.flush()
            s.add(
                Prediction(
                    case_id=case.id,
                    model_version_id=mv.id,
                    predicted_label=predicted,
                    probability_raw=0.9,
                    probability_calibrated=float(0.55 + 0.4 * rng.random()),
                    created_at=now,
                )
            )
            for k, arm in enumerate(arms):
                s.add(
                    Stimulus(
                        study_id=STUDY,
                        case_id=case.id,
                        arm_id=arm.id,
                        code=f"Q{c:03d}{k}ZX7K",
                        image_png=tiny_png(10 * c + k),
                        original_png=tiny_png(200),
                        overlay_png=tiny_png(100 + k),
                        provenance={"arm": arm.arm_key, "method": arm.method},
                        metrics={"deletion_auc": float(rng.random())},
                        narrative="text",
                        created_at=now,
                    )
                )
        append_event(s, actor="lead", action="test_setup", study_id=STUDY)


def _answer(
    rng: np.random.Generator, arm: str, rater_fx: float, case_fx: float, expected: Any
) -> dict[str, Any]:
    if expected:
        return dict(expected["answers"]) | (
            {"plausible": "yes"} if "plausible" not in expected["answers"] else {}
        )
    latent = 3 + ARM_EFFECT[arm] + rater_fx + case_fx + rng.normal(0, 0.7)
    value = int(np.clip(np.rint(latent), 1, 5))
    out: dict[str, Any] = {"usefulness": value, "plausible": "yes" if latent > 3 else "no"}
    if rng.random() < 0.1:
        out["comment"] = f"note {int(rng.integers(1000))}"
    return out


def rate_all(
    store: Store, tokens: dict[str, str], *, seed: int = 7, fail_catch: str | None = None
) -> dict[str, int]:
    """Every rater answers every item of their queue through the service layer."""
    rng = np.random.default_rng(seed)
    case_fx = rng.normal(0, 0.5, 1000)
    counts = {"answers": 0, "corrections": 0}
    for i, (name, token) in enumerate(sorted(tokens.items())):
        p = authenticate(store, STUDY, token)
        give_consent(store, p, consent_page(store, p).statement_sha256)
        rater_fx = rng.normal(0, 0.4)
        while (item := next_item(store, p)) is not None:
            with store.session() as s:
                a = s.get_one(Assignment, item.assignment_id)
                stim = s.get_one(Stimulus, a.stimulus_id)
                arm = s.get_one(Arm, stim.arm_id).arm_key
                expected = a.expected
            if expected and name == fail_catch:  # this rater ignores attention checks
                wrong = expected["answers"]["usefulness"] % 5 + 1
                expected = {"answers": {"usefulness": wrong}}
            answers = _answer(rng, arm, rater_fx, case_fx[stim.case_id], expected)
            marks = [
                {"x": 0.5, "y": 0.5, "tag": "misleading" if arm == "random_map" else "correct"}
            ]
            submit(
                store,
                p,
                item.assignment_id,
                answers,
                cue_marks=marks,
                time_on_task_ms=int(3000 + 100 * rng.integers(0, 50)),
                idempotency_key=uuid.uuid4().hex,
            )
            counts["answers"] += 1
            if i == 0 and not counts["corrections"] and not expected and not item.training:
                fixed = dict(answers, usefulness=5)
                correct(
                    store,
                    p,
                    item.assignment_id,
                    fixed,
                    reason="clicked the wrong value",
                    idempotency_key=uuid.uuid4().hex,
                )
                counts["corrections"] += 1
    return counts


def build_rated(
    store: Store,
    protocol_path: Path,
    *,
    n_raters: int = 6,
    n_cases: int = 8,
    seed: int = 7,
    fail_catch: bool = False,
    do_close: bool = True,
    rate: Callable[[Store, dict[str, str]], object] | None = None,
) -> Rated:
    register(store, load_study(protocol_path), actor="lead")
    rng = np.random.default_rng(seed)
    _insert_cases(store, n_cases, rng)
    names = [f"dr_{chr(ord('a') + i)}" for i in range(n_raters)]
    tokens = {
        n: add_rater(
            store, STUDY, n, role="rater", qualifications={"inspection_years": "5"}, actor="lead"
        ).token
        for n in names
    }
    assign_study(store, STUDY, actor="lead")
    if rate is not None:
        rate(store, tokens)
    else:
        rate_all(store, tokens, seed=seed, fail_catch=names[-1] if fail_catch else None)
    if do_close:
        close(store, STUDY, actor="lead")
    return Rated(store, protocol_path, names, tokens, n_cases)


@pytest.fixture
def cheap_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        accounts, "_HASHER", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    )


@pytest.fixture
def make_rated(store: Store, demo_copy: Path, cheap_hashing: None) -> Callable[..., Rated]:
    """Build one closed, rated study per test (demo protocol, 4 arms, 6 raters)."""

    def make(**kwargs: Any) -> Rated:
        return build_rated(store, demo_copy, **kwargs)

    return make


@pytest.fixture
def rated(make_rated: Callable[..., Rated]) -> Rated:
    return make_rated()
