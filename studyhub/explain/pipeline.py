"""``studyhub explain``: every arm for every enrolled case, stored with provenance.

Idempotent: a stimulus that exists is never recomputed, so a rerun (or a run
resumed after a crash) does only the missing work. Each batch of stimuli is
written in one transaction with its audit event. A DICOM case's stimuli also
keep its modality values (``Stimulus.original_raw``), so that raters can apply
the protocol's window presets to the plain image. ``verify_stimuli`` recomputes
a random sample of stored stimuli and compares their attributions with the
stored hashes (the modality values are the file's, checked by its SHA-256).
"""

from __future__ import annotations

import io
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import select

from studyhub.cases.dataset import read_cases
from studyhub.cases.dicom import modality_bytes
from studyhub.cases.enroll import registered_protocol
from studyhub.cases.records import CaseRecord, load_image, load_mask, load_modality_values
from studyhub.errors import DataError, InputError, LifecycleError, StudyhubError
from studyhub.explain.compute import (
    CaseInput,
    StimulusOutput,
    array_bytes,
    array_from_bytes,
    attribution_sha256,
    compute_stimuli,
    render_views,
)
from studyhub.explain.distributed import ClusterDispatch, explain_task
from studyhub.models import LoadedModel, load_model
from studyhub.protocol.schema import Protocol
from studyhub.store import lifecycle
from studyhub.store.audit import append_event
from studyhub.store.db import Store
from studyhub.store.models import Arm, Case, ModelVersion, Prediction, Stimulus, Study, utcnow
from studyhub.store.studies import get_study

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["ExplainSummary", "VerifyReport", "explain_study", "new_code", "verify_stimuli"]

#: Codes avoid look-alike characters; they are drawn from the OS's secure random source,
#: deliberately not from the protocol seed, so nobody can recompute which code is which arm.
CODE_ALPHABET = "".join(c for c in string.ascii_uppercase + string.digits if c not in "O0I1L")


def new_code(length: int) -> str:
    """An opaque stimulus code: random, unrelated to case, arm or file."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(length))


@dataclass
class ExplainSummary:
    """What an explain run did."""

    study_id: str
    computed: int = 0
    existing: int = 0
    per_arm: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass(frozen=True)
class _Context:
    study: Study
    protocol: Protocol
    model: LoadedModel
    cases: list[tuple[Case, Prediction, CaseRecord]]
    arms: list[Arm]


def _context(store: Store, study_id: str | None, data_dir: Path, *, step: str) -> _Context:
    with store.session() as s:
        study = get_study(s, study_id)
        if step in ("explain", "compute metrics"):
            lifecycle.require(study, step)
        protocol, base = registered_protocol(study)
        rows = [
            (case, pred)
            for case, pred in s.execute(
                select(Case, Prediction)
                .join(Prediction, Prediction.case_id == Case.id)
                .where(Case.study_id == study.id, Case.enrolled.is_(True))
                .order_by(Case.enrollment_order)
            )
        ]
        arms = list(s.scalars(select(Arm).where(Arm.study_id == study.id).order_by(Arm.id)))
        version = s.scalars(select(ModelVersion).where(ModelVersion.study_id == study.id)).first()
    if not rows:
        raise LifecycleError(
            f"study {study.id!r} has no enrolled cases; enroll them first (studyhub sample or "
            "studyhub enroll)"
        )
    weights = base / protocol.model.weights if protocol.model.weights else None
    model = load_model(protocol.model.entry_point, weights)
    if version is not None and version.weights_sha256 != model.weights_sha256:
        raise DataError(
            f"the model's weights changed since the cases were enrolled (enrolled with "
            f"{version.weights_sha256[:12]}…, now {model.weights_sha256[:12]}…); restore the "
            "registered model: explanations must come from the model that made the predictions"
        )
    records = {r.case_key: r for r in read_cases(protocol.data, base, cache_dir=data_dir)}
    cases: list[tuple[Case, Prediction, CaseRecord]] = []
    for case, pred in rows:
        record = records.get(case.case_key)
        if record is None:
            raise DataError(
                f"enrolled case {case.case_key!r} is no longer in the data source; restore it"
            )
        if record.image_sha256 != case.image_sha256:
            raise DataError(
                f"the image of enrolled case {case.case_key!r} changed since enrollment (SHA-256 "
                f"{case.image_sha256[:12]}… then, {record.image_sha256[:12]}… now); restore it"
            )
        cases.append((case, pred, record))
    return _Context(study, protocol, model, cases, arms)


def _same_shape(inputs: list[CaseInput]) -> list[list[int]]:
    """Indices of ``inputs`` grouped by image shape, groups in order of first appearance."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, case in enumerate(inputs):
        groups.setdefault(tuple(case.image.shape), []).append(i)
    return list(groups.values())


#: An enrolled case as the coordinator holds it, and what it keeps beside a cluster task.
_Row = tuple[Case, Prediction, CaseRecord]
_Payload = tuple[Arm, list[_Row]]


def _inputs(ctx: _Context, chunk: list[tuple[Case, Prediction, CaseRecord]]) -> list[CaseInput]:
    labels = ctx.protocol.data.labels
    out = []
    for case, pred, record in chunk:
        out.append(
            CaseInput(
                case_key=case.case_key,
                image=load_image(record),
                image_sha256=case.image_sha256,
                mask=load_mask(record),
                target=labels.index(pred.predicted_label),
                target_label=pred.predicted_label,
                probability=pred.probability_calibrated,
            )
        )
    return out


def explain_study(
    store: Store,
    study_id: str | None,
    *,
    data_dir: Path,
    actor: str,
    device: str = "cpu",
    batch_size: int = 16,
    progress: Callable[[str, int, int], None] | None = None,
    client: Client | None = None,
) -> ExplainSummary:
    """Compute and store every missing stimulus (case x arm) of the study.

    A stimulus is what raters see (attribution, uncertainty, rendering, narrative,
    cue); the quantitative metrics are computed afterwards by
    :func:`studyhub.explain.metrics_step.compute_metrics`. ``progress`` is called
    as ``progress(arm, done, total)`` after each stored batch, counting that arm's
    stimuli (the ones that existed included). With a Dask ``client`` the (arm,
    batch) tasks run on its workers (:mod:`studyhub.explain.distributed`), the
    same batches as without one, and this process alone stores their results.
    """
    import time

    if device != "cpu" and client is None:  # on a cluster, each worker checks its own device
        import torch

        if device.startswith("cuda") and not torch.cuda.is_available():
            raise InputError(
                f"--device {device} was asked for but no CUDA device is available; use --device cpu"
            )
    started = time.perf_counter()
    ctx = _context(store, study_id, data_dir, step="explain")
    if client is None:
        ctx.model.module.to(device)
    cluster = None if client is None else ClusterDispatch[_Payload](client)
    summary = ExplainSummary(study_id=ctx.study.id)
    with store.session() as s:
        done = {
            (row.case_id, row.arm_id)
            for row in s.execute(
                select(Stimulus.case_id, Stimulus.arm_id).where(Stimulus.study_id == ctx.study.id)
            )
        }
    summary.existing = len(done)

    finished: dict[str, int] = {}

    def store_batch(arm: Arm, chunk: list[_Row], outputs: list[StimulusOutput]) -> None:
        written = _store_batch(store, ctx, arm, chunk, outputs, actor=actor)
        summary.computed += written
        summary.per_arm[arm.arm_key] += written
        finished[arm.arm_key] += written
        if progress is not None:
            progress(arm.arm_key, finished[arm.arm_key], len(ctx.cases))

    for arm in ctx.arms:
        todo = [c for c in ctx.cases if (c[0].id, arm.id) not in done]
        summary.per_arm[arm.arm_key] = 0
        finished[arm.arm_key] = len(ctx.cases) - len(todo)
        if progress is not None:
            progress(arm.arm_key, finished[arm.arm_key], len(ctx.cases))
        for start in range(0, len(todo), batch_size):
            loaded = todo[start : start + batch_size]
            inputs = _inputs(ctx, loaded)
            # A model takes one image size per batch: cases of other sizes (a CT and
            # an MR series in one study) go in batches of their own.
            for group in _same_shape(inputs):
                chunk = [loaded[i] for i in group]
                if cluster is not None:
                    task = explain_task(
                        ctx.protocol, arm, ctx.model, [inputs[i] for i in group], device
                    )
                    for (done_arm, done_chunk), outputs in cluster.submit(task, (arm, chunk)):
                        store_batch(done_arm, done_chunk, outputs)
                    continue
                outputs = compute_stimuli(
                    protocol=ctx.protocol,
                    arm_key=arm.arm_key,
                    method=arm.method,
                    params=arm.params,
                    model=ctx.model.module,
                    preprocess=ctx.model.preprocess,
                    weights_sha256=ctx.model.weights_sha256,
                    entry_point=ctx.model.entry_point,
                    cases=[inputs[i] for i in group],
                    device=device,
                )
                store_batch(arm, chunk, outputs)
    if cluster is not None:
        for (done_arm, done_chunk), outputs in cluster.drain():
            store_batch(done_arm, done_chunk, outputs)
    summary.seconds = time.perf_counter() - started
    return summary


def _raw(record: CaseRecord) -> bytes | None:
    """The stored form of a DICOM case's modality values (None for other images)."""
    values = load_modality_values(record)
    return None if values is None else modality_bytes(values)


def _store_batch(
    store: Store,
    ctx: _Context,
    arm: Arm,
    chunk: list[tuple[Case, Prediction, CaseRecord]],
    outputs: list[StimulusOutput],
    *,
    actor: str,
) -> int:
    """Store a batch's stimuli; those already stored for (case, arm) are skipped.

    Returns how many were written: a retried or duplicated task writes nothing.
    """
    length = ctx.protocol.blinding.code_length
    for (case, _pred, _rec), out in zip(chunk, outputs, strict=True):
        if out.case_key != case.case_key:  # pragma: no cover - a dispatch bug, never input
            raise StudyhubError(
                f"internal: a result for case {out.case_key!r} came back for {case.case_key!r}"
            )
    raws = [_raw(record) for _case, _pred, record in chunk]
    with store.write() as s:
        study = get_study(s, ctx.study.id)
        lifecycle.require(study, "explain")
        stored = set(
            s.scalars(
                select(Stimulus.case_id).where(
                    Stimulus.arm_id == arm.id,
                    Stimulus.case_id.in_([case.id for case, _p, _r in chunk]),
                )
            )
        )
        fresh = [
            (case, out, raw)
            for (case, _pred, _rec), out, raw in zip(chunk, outputs, raws, strict=True)
            if case.id not in stored
        ]
        if not fresh:
            return 0
        taken = set(s.scalars(select(Stimulus.code).where(Stimulus.study_id == study.id)))
        ids: list[int] = []
        for case, out, raw in fresh:
            code = new_code(length)
            while code in taken:
                code = new_code(length)
            taken.add(code)
            row = Stimulus(
                study_id=study.id,
                case_id=case.id,
                arm_id=arm.id,
                code=code,
                image_png=out.image_png,
                original_png=out.original_png,
                overlay_png=out.overlay_png,
                original_raw=raw,
                attribution=None if out.attribution is None else array_bytes(out.attribution),
                attribution_sha256=out.attribution_sha256,
                provenance=out.provenance,
                metrics=out.metrics,
                narrative=out.narrative,
                seed=out.seed,
                duration_ms=out.duration_ms,
                created_at=utcnow(),
            )
            s.add(row)
            s.flush()
            ids.append(row.id)
        append_event(
            s,
            actor=actor,
            action="explain",
            study_id=study.id,
            payload={
                "arm": arm.arm_key,
                "stimuli": ids,
                "attribution_sha256": [out.attribution_sha256 for _c, out, _r in fresh],
            },
        )
    return len(ids)


@dataclass(frozen=True)
class VerifyReport:
    """The outcome of recomputing stored stimuli."""

    checked: int
    matched: int
    rows: list[dict[str, Any]]

    @property
    def ok(self) -> bool:
        return self.checked == self.matched


#: Stochastic arms are reproducible from their seed up to floating-point reduction order.
STOCHASTIC_RTOL = 1e-4
STOCHASTIC_ATOL_SHARE = 1e-5


def verify_stimuli(
    store: Store, study_id: str | None, n: int, *, data_dir: Path, device: str = "cpu"
) -> VerifyReport:
    """Recompute ``n`` random stored stimuli and compare them with what is stored.

    What is compared is what raters see and analyses read, never a stored hash
    alone: the attribution blob, the plain original, the overlay layer and the
    stimulus PNG, the narrative, the attribution's hash column against its own
    blob, and a DICOM case's modality values. Deterministic methods on the
    device that made them must match bit for bit; stochastic ones (given their
    stored seed) or another device within ``STOCHASTIC_RTOL`` relative and
    ``STOCHASTIC_ATOL_SHARE`` of the map's largest magnitude, with the overlay
    re-rendered from the stored map (it must match that map exactly) and the
    stimulus within ``PNG_PIXEL_SHARE`` of differing pixels.
    """
    if n < 1:
        raise InputError(f"--verify {n}: give the number of stimuli to recompute (at least 1)")
    ctx = _context(store, study_id, data_dir, step="verify")
    with store.session() as s:
        stimuli = list(
            s.scalars(
                select(Stimulus).where(
                    Stimulus.study_id == ctx.study.id, Stimulus.attribution.is_not(None)
                )
            )
        )
    if not stimuli:
        raise LifecycleError(
            f"study {ctx.study.id!r} has no stored stimuli to verify; run studyhub explain"
        )
    rng = np.random.default_rng(secrets.randbits(64))
    picked = rng.choice(len(stimuli), size=min(n, len(stimuli)), replace=False)
    by_key = {c.case_key: (c, p, r) for c, p, r in ctx.cases}
    by_id = {c.id: c.case_key for c, _p, _r in ctx.cases}
    arms = {a.id: a for a in ctx.arms}
    rows: list[dict[str, Any]] = []
    for i in picked:
        stim = stimuli[int(i)]
        arm = arms[stim.arm_id]
        key = by_id[stim.case_id]
        batch_keys = [k for k in stim.provenance.get("batch", [key]) if k in by_key] or [key]
        inputs = _inputs(ctx, [by_key[k] for k in batch_keys])
        fresh = compute_stimuli(
            protocol=ctx.protocol,
            arm_key=arm.arm_key,
            method=arm.method,
            params=arm.params,
            model=ctx.model.module,
            preprocess=ctx.model.preprocess,
            weights_sha256=ctx.model.weights_sha256,
            entry_point=ctx.model.entry_point,
            cases=inputs,
            device=device,
        )[batch_keys.index(key)]
        exact_expected = bool(stim.provenance.get("deterministic", True)) and (
            stim.provenance.get("device") == device
        )
        problems = _compare(
            ctx.protocol, stim, fresh, inputs[batch_keys.index(key)], by_key[key][2], exact_expected
        )
        rows.append(
            {
                "stimulus": stim.code,
                "method": arm.method,
                "deterministic": bool(stim.provenance.get("deterministic", True)),
                "match": not problems,
                "detail": "; ".join(problems)
                if problems
                else ("identical" if exact_expected else "within tolerance")
                + " (attribution, PNGs, narrative)",
            }
        )
    return VerifyReport(len(rows), sum(r["match"] for r in rows), rows)


#: Share of pixels a re-rendered stimulus may differ in when its map matches only within
#: tolerance (a stochastic arm, another device): an uncertainty hatch may move by a pixel.
PNG_PIXEL_SHARE = 0.01


def _compare(
    protocol: Protocol,
    stim: Stimulus,
    fresh: StimulusOutput,
    case: CaseInput,
    record: CaseRecord,
    exact: bool,
) -> list[str]:
    """What differs between a stored stimulus and its recomputation (empty: nothing)."""
    problems: list[str] = []
    stored: np.ndarray | None = None
    if stim.attribution is not None:
        try:
            stored = array_from_bytes(stim.attribution)
        except (ValueError, OSError, EOFError):
            problems.append("the stored attribution blob is not a readable array")
    if stored is not None and attribution_sha256(stored) != stim.attribution_sha256:
        problems.append("the attribution hash column does not match the stored attribution blob")
    if fresh.attribution is None or stored is None:
        if (fresh.attribution is None) != (stim.attribution is None):
            problems.append("the stored attribution is missing or unexpected")
        return problems
    if exact:
        if array_bytes(fresh.attribution) != stim.attribution:
            problems.append("the attribution differs from its recomputation (bit for bit)")
    elif fresh.attribution.shape != stored.shape:
        problems.append(
            f"the attribution's shape {list(stored.shape)} differs from its recomputation's "
            f"{list(fresh.attribution.shape)}"
        )
    else:
        scale = float(np.abs(stored).max()) or 1.0
        close = np.allclose(
            fresh.attribution, stored, rtol=STOCHASTIC_RTOL, atol=STOCHASTIC_ATOL_SHARE * scale
        )
        if not close:
            diff = float(np.abs(fresh.attribution - stored).max()) / scale
            problems.append(
                f"the attribution differs from its recomputation: max difference {diff:.2e} of "
                "the map's range"
            )
    if stim.original_png != fresh.original_png:
        problems.append("the original PNG differs from the rendering of the case's image")
    unc = _uncertainty_of(fresh, protocol)
    image_png, _original, overlay = render_views(protocol, case.image, stored, unc)
    if stim.overlay_png != overlay:
        problems.append("the overlay PNG differs from the rendering of the stored attribution")
    if exact:
        if stim.image_png != fresh.image_png:
            problems.append("the stimulus PNG differs from its recomputation")
        if stim.narrative != fresh.narrative:
            problems.append("the narrative differs from its recomputation")
    elif _pixel_share(stim.image_png, image_png) > PNG_PIXEL_SHARE:
        problems.append("the stimulus PNG differs from the rendering of the stored attribution")
    raw = _raw(record)
    if stim.original_raw != raw:
        problems.append("the stored modality values differ from the DICOM file's")
    return problems


def _uncertainty_of(fresh: StimulusOutput, protocol: Protocol) -> np.ndarray | None:
    return fresh.uncertainty if protocol.cues.show_uncertainty else None


def _pixel_share(a: bytes | None, b: bytes | None) -> float:
    """Share of pixels that differ between two PNGs (1.0 when either is missing or unreadable)."""
    from PIL import Image, UnidentifiedImageError

    if a is None or b is None:
        return 1.0
    try:
        x = np.asarray(Image.open(io.BytesIO(a)).convert("RGB"))
        y = np.asarray(Image.open(io.BytesIO(b)).convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError):
        return 1.0
    if x.shape != y.shape:
        return 1.0
    return float(np.any(x != y, axis=-1).mean())
