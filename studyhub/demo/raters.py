"""Scripted raters: a whole study rated through the real service layer, from a latent model.

:func:`simulate_ratings` signs every active rater account of a study in (single
sign-on, a token, or the account row), agrees to the consent statement, and
answers every served item with :func:`studyhub.rating.next_item`,
:func:`~studyhub.rating.submit` and :func:`~studyhub.rating.correct`: exactly
the calls the Streamlit app makes, so every answer is validated, stored,
stamped and audited as a person's would be.

The answers come from a latent model (:class:`LatentModel`). For rater ``r``,
case ``c`` and arm ``a`` the latent value, in units of a quarter of a Likert
item's range (one point on a 1..5 scale), is

    arm_effects[a] + u_r + v_c + (uv)_{ra} + (vz)_{ca} + e

with normal rater, case, rater x arm and case x arm effects (drawn once per
rater, case and pair from the seed) and fresh noise ``e`` per reading; a
repeat reading is its first reading's value plus a little noise. Likert
answers round the scale's midpoint plus the latent value, yes/no answers say
yes when it is positive. Single-choice and diagnosis answers are right (the
case's label) with a probability per arm, a diagnosis' confidence higher when
right. Catch items are answered as their instruction says, or wrongly with
the profile's failure probability. Some answers are corrected (with a
reason), some carry a free-text comment, many carry cue marks: ``correct``
marks on the labelled defect, ``misleading`` marks on a marker region (the
demo's stamp) when the case's mask is known, else anywhere.

This is a test harness, not a rater: to know what to answer it reads from the
store what the app never shows (a stimulus' arm, a case's label and mask, a
catch item's expected answer). Everything is deterministic given ``seed``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from sqlalchemy import select

from studyhub.demo.rater_model import Facts, LatentModel, RaterProfile, Reader, Regions
from studyhub.errors import InputError
from studyhub.rating import (
    Principal,
    authenticate,
    consent_page,
    correct,
    give_consent,
    next_item,
    progress,
    submit,
)
from studyhub.rating.sso import authenticate_sso
from studyhub.store import lifecycle
from studyhub.store.db import Store
from studyhub.store.models import Arm, Assignment, Case, Rater, Stimulus
from studyhub.store.studies import get_study, registered_protocol_of

__all__ = ["LatentModel", "RaterProfile", "RaterTally", "SimulationSummary", "simulate_ratings"]


@dataclass
class RaterTally:
    """What one scripted rater did."""

    answers: int = 0
    corrections: int = 0
    catch_items: int = 0
    catch_failures: int = 0
    free_texts: int = 0
    marks: int = 0
    finished: bool = False


@dataclass(frozen=True)
class SimulationSummary:
    """What :func:`simulate_ratings` did, per rater pseudonym (``rater-12``) and in total."""

    study_id: str
    seed: int
    raters: dict[str, RaterTally] = field(default_factory=dict)

    def _total(self, name: str) -> int:
        return sum(int(getattr(t, name)) for t in self.raters.values())

    @property
    def answers(self) -> int:
        """Answers submitted (corrections not counted)."""
        return self._total("answers")

    @property
    def corrections(self) -> int:
        """Corrections stored."""
        return self._total("corrections")

    @property
    def catch_items(self) -> int:
        """Attention checks answered."""
        return self._total("catch_items")

    @property
    def catch_failures(self) -> int:
        """Attention checks answered against their instruction."""
        return self._total("catch_failures")

    @property
    def free_texts(self) -> int:
        """Free-text answers written."""
        return self._total("free_texts")

    @property
    def marks(self) -> int:
        """Cue marks placed (on original answers)."""
        return self._total("marks")

    @property
    def unfinished(self) -> list[str]:
        """Raters whose queue is not done (a session still in its washout)."""
        return [name for name, t in self.raters.items() if not t.finished]


def _probability(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise InputError(f"{name} is {value!r}; give a probability from 0 to 1")
    return float(value)


def _check_inputs(
    profiles: Mapping[str, RaterProfile],
    default: RaterProfile,
    arms: list[str],
    arm_effects: Mapping[str, float],
    accuracy: Mapping[str, float],
    seed: Any,
) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InputError(f"seed is {seed!r}; give a whole number from 0 up, e.g. seed=1")
    for what, table in (("arm_effects", arm_effects), ("accuracy", accuracy)):
        unknown = sorted(set(table) - set(arms))
        if unknown:
            raise InputError(
                f"{what} names arms {unknown}, which the study does not have; use its arm "
                f"ids: {', '.join(arms)}"
            )
    for arm, p in accuracy.items():
        _probability(f"accuracy[{arm!r}]", p)
    for arm, effect in arm_effects.items():
        if isinstance(effect, bool) or not isinstance(effect, int | float):
            raise InputError(f"arm_effects[{arm!r}] is {effect!r}; give a number, e.g. 0.5")
    for who, profile in [("default profile", default), *profiles.items()]:
        for f in fields(RaterProfile):
            value = getattr(profile, f.name)
            if f.name in ("skill",):
                continue
            if f.name == "median_ms":
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise InputError(
                        f"{who}: median_ms is {value!r}; give the median time per item in "
                        "whole milliseconds, e.g. 8000"
                    )
                continue
            _probability(f"{who}: {f.name}", value)


def _facts(store: Store, study_id: str) -> dict[int, Facts]:
    with store.session() as s:
        rows = s.execute(
            select(
                Assignment.id,
                Assignment.kind,
                Assignment.expected,
                Assignment.repeat_of_id,
                Case.id,
                Case.case_key,
                Case.label,
                Arm.arm_key,
                Arm.id,
            )
            .join(Stimulus, Stimulus.id == Assignment.stimulus_id)
            .join(Case, Case.id == Stimulus.case_id)
            .join(Arm, Arm.id == Stimulus.arm_id)
            .where(Assignment.study_id == study_id)
        )
        return {r[0]: Facts(*r[1:]) for r in rows}


def _sign_in(store: Store, rater: Rater, tokens: Mapping[str, str]) -> Principal:
    """Single sign-on when linked, else the account's token when given, else its row."""
    if rater.sso_identity:
        claims = {"email": rater.sso_identity, "email_verified": True}
        return authenticate_sso(store, rater.study_id, claims, client="simulated")
    if rater.name in tokens:
        return authenticate(store, rater.study_id, tokens[rater.name], client="simulated")
    # The harness may build the principal from the account row: every service call
    # re-reads the account (role, revocation, study) anyway.
    return Principal(rater.id, rater.name, rater.role, rater.study_id)


def simulate_ratings(
    store: Store,
    study_id: str | None,
    *,
    seed: int,
    profiles: Mapping[str, RaterProfile] | None = None,
    default: RaterProfile | None = None,
    arm_effects: Mapping[str, float] | None = None,
    accuracy: Mapping[str, float] | None = None,
    base_accuracy: float = 0.7,
    model: LatentModel | None = None,
    tokens: Mapping[str, str] | None = None,
    masks: Mapping[str, Any] | None = None,
) -> SimulationSummary:
    """Rate a study through the service layer with scripted raters.

    Every active account with role ``rater`` (oldest first) signs in, agrees
    to the consent statement if it has not, and answers items from
    :func:`~studyhub.rating.next_item` until its queue is done or its next
    session is still in the protocol's washout. See the module documentation
    for the model and for what the harness reads from the store.

    Parameters
    ----------
    store : Store
        The open store.
    study_id : str or None
        The study, in state ``rating`` (``None``: the only study).
    seed : int
        Fixes every draw: the same seed on the same study gives the same answers.
    profiles : mapping of str to RaterProfile, optional
        Per account name; accounts not named behave as ``default``.
    default : RaterProfile, optional
        The behaviour of accounts not in ``profiles``.
    arm_effects : mapping of str to float, optional
        Protocol arm id -> shift of the latent value (quarters of a Likert
        range); arms not named have 0.
    accuracy : mapping of str to float, optional
        Protocol arm id -> probability of a right single-choice or diagnosis
        answer; arms not named have ``base_accuracy``.
    base_accuracy : float, default 0.7
        See ``accuracy``.
    model : LatentModel, optional
        The random effects' standard deviations.
    tokens : mapping of str to str, optional
        Account name -> token, to sign in with :func:`~studyhub.rating.authenticate`.
        Accounts linked to single sign-on sign in with their address; others
        without a token are signed in from their account row.
    masks : mapping of str to array, optional
        Case key -> integer label mask, for cue marks on labelled regions;
        demo cases' masks are regenerated when not given.

    Returns
    -------
    SimulationSummary
        Per rater pseudonym: answers, corrections, catch items and failures,
        free-text comments, marks, and whether the queue is done.

    Raises
    ------
    InputError
        For a negative or non-integer seed, a probability outside 0..1, an
        arm id the study does not have, or no active rater account; nothing
        is written then.
    LifecycleError
        When the study is not in ``rating``.
    """
    profiles = dict(profiles or {})
    default = default or RaterProfile()
    arm_effects = dict(arm_effects or {})
    accuracy = dict(accuracy or {})
    tokens = dict(tokens or {})
    with store.session() as s:
        study = get_study(s, study_id)
        lifecycle.require(study, "rate")
        protocol = registered_protocol_of(s, study)
        arms = list(s.scalars(select(Arm.arm_key).where(Arm.study_id == study.id)))
        raters = list(
            s.scalars(
                select(Rater)
                .where(
                    Rater.study_id == study.id, Rater.role == "rater", Rater.revoked_at.is_(None)
                )
                .order_by(Rater.id)
            )
        )
        names = {r.name for r in s.scalars(select(Rater).where(Rater.study_id == study.id))}
    _check_inputs(profiles, default, arms, arm_effects, accuracy, seed)
    _probability("base_accuracy", base_accuracy)
    unknown = sorted(set(profiles) - names)
    if unknown:
        raise InputError(
            f"profiles name accounts {unknown}, which study {study.id!r} does not have; use "
            "account names from studyhub rater list"
        )
    if not raters:
        raise InputError(
            f"study {study.id!r} has no active rater account; add raters with studyhub rater add"
        )
    facts = _facts(store, study.id)
    regions = Regions(protocol, masks)
    summary = SimulationSummary(study.id, seed)
    for rater in raters:
        reader = Reader(
            rater,
            protocol,
            profiles.get(rater.name, default),
            model or LatentModel(),
            seed=seed,
            arm_effects=arm_effects,
            accuracy=accuracy,
            base_accuracy=base_accuracy,
            regions=regions,
        )
        principal = _sign_in(store, rater, tokens)
        summary.raters[principal.pseudonym] = _rate(store, principal, reader, facts, seed)
    return summary


def _rate(
    store: Store, principal: Principal, reader: Reader, facts: Mapping[int, Facts], seed: int
) -> RaterTally:
    tally = RaterTally()
    page = consent_page(store, principal)
    if page.given_at is None:
        give_consent(store, principal, page.statement_sha256)
    while (item := next_item(store, principal)) is not None:
        aid = item.assignment_id
        f = facts[aid]
        answers, failed = reader.answers(aid, f)
        marks = reader.marks(f)
        submit(
            store,
            principal,
            aid,
            answers,
            cue_marks=marks,
            time_on_task_ms=reader.time_ms(),
            idempotency_key=f"simulated-{seed}-{aid}",
        )
        tally.answers += 1
        tally.marks += len(marks)
        tally.free_texts += sum(
            1 for i in reader.protocol.instrument.items if i.type == "free_text" and i.id in answers
        )
        if f.kind == "catch":
            tally.catch_items += 1
            tally.catch_failures += int(failed)
        fixed = reader.correction(answers, f)
        if fixed is not None:
            correct(
                store,
                principal,
                aid,
                fixed,
                reason=reader.reason(),
                idempotency_key=f"simulated-{seed}-{aid}-correction",
            )
            tally.corrections += 1
    tally.finished = progress(store, principal).finished
    return tally
