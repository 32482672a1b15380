"""``studyhub package``: the evidence package of an analysed study, folder and zip.

Its layout is ``PACKAGE_LAYOUT`` (README.txt in the package repeats it).

Nothing in it names a rater account, an e-mail or a token: raters appear as
``rater-<n>`` and the audit log names accounts by pseudonym.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session

from studyhub import __version__
from studyhub.errors import AuditChainError, InputError
from studyhub.evidence.analyze import (
    canonical_results,
    load_masks,
    marked_case_keys,
    registered_plan_of,
    results_from_session,
    software_versions,
)
from studyhub.evidence.export import case_pseudonym, write_tables
from studyhub.evidence.package_report import report_input
from studyhub.evidence.package_rows import event_json, study_rows
from studyhub.evidence.report import write_report
from studyhub.protocol.load import CANONICAL_VERSION
from studyhub.store import lifecycle
from studyhub.store.audit import append_event
from studyhub.store.db import Store
from studyhub.store.models import (
    Amendment,
    AnalysisRun,
    Arm,
    AuditEvent,
    Stimulus,
    Study,
)
from studyhub.store.studies import get_study, registered_protocol_of
from studyhub.store.verify import verify_store

__all__ = ["PACKAGE_LAYOUT", "PackageResult", "build_package", "sha256_file"]

#: What the package holds, file by file (README.txt in the package repeats it).
PACKAGE_LAYOUT: Final = """
    README.txt                     what is here and how to verify it
    protocol/protocol.yaml         the protocol as registered (its text as written)
    protocol/plan.yaml             the analysis plan as registered
    protocol/registration.json     hashes, registration time, canonical texts
    protocol/amendments.json       every amendment with its reason and texts
    cases/sampling_report.json     the sampling (or enrollment) reports
    cases/masks/case-<n>.png       region masks of cases with cue marks (given --data)
    explanations/provenance.jsonl  per stimulus: case, arm, method, settings, metrics, hashes
    stimuli/<code>.png             every stimulus as raters saw it
    data/answers.csv, marks.csv, cases.csv, data_dictionary.csv: the de-identified export
    audit/events.jsonl             the audit chain (other studies' events sealed to hashes)
    audit/rows/<table>.jsonl       every row of the study the chain binds
    audit/head.json                the chain's head at packaging
    audit/verification.txt         studyhub audit verify at packaging
    results/results.json           the analysis run's results
    results/analysis_run.json      the run: plan hash, software, times
    report/report.html, report.pdf the study report (same sections)
    environment.json               package versions, platform, device
    ro-crate-metadata.json         RO-Crate description of every file
    SHA256SUMS                     the SHA-256 of every other file
"""


@dataclass(frozen=True)
class PackageResult:
    """Where the package was written, and its fingerprint."""

    study_id: str
    folder: Path
    zip_path: Path
    files: int
    sums_sha256: str


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r, sort_keys=True, separators=(",", ":")) + "\n" for r in rows)
    path.write_text(text, encoding="utf-8")


def build_package(
    store: Store,
    study_id: str | None,
    out_dir: Path,
    *,
    actor: str,
    data_dir: Path | None = None,
) -> PackageResult:
    """Write the evidence package of an analysed study into ``out_dir``.

    Raises
    ------
    LifecycleError
        When the study has not been analysed.
    AuditChainError
        When the store does not verify, the registration does not match, or the
        data differ from what the last analysis run used.
    InputError
        When the audit log names a rater account (a store written before accounts
        were named by pseudonym) or ``out_dir`` already holds another package.
    """
    with store.snapshot() as s:
        study = get_study(s, study_id)
        lifecycle.require(study, "package")
        existing = out_dir / f"{study.id}-package"
        if existing.exists() and not (existing / "SHA256SUMS").is_file():
            raise InputError(
                f"--out {str(out_dir)!r} already holds {existing.name!r}, which is not an "
                "evidence package; move it away or choose another --out folder"
            )
        protocol = registered_protocol_of(s, study)
        plan = registered_plan_of(study)
        report = verify_store(s)
        if not report.ok:
            raise AuditChainError(
                "the store does not verify, so no evidence package is written: "
                + "; ".join(report.render()[:3])
                + " (run studyhub audit verify for every discrepancy)"
            )
        _refuse_identity_leaks(s, study.id)
        run = s.scalars(
            select(AnalysisRun)
            .where(AnalysisRun.study_id == study.id)
            .order_by(AnalysisRun.id.desc())
            .limit(1)
        ).one()
        masks = load_masks(protocol, study, data_dir, marked_case_keys(s, study.id))
        results, tidy = results_from_session(s, study, protocol, plan, masks)
        if results["data_digest"] != run.results.get("data_digest"):
            raise AuditChainError(
                f"the data of study {study.id!r} differ from what analysis run {run.id} used "
                f"(digest {results['data_digest'][:12]}… now, {run.results['data_digest'][:12]}… "
                "then); give the same --data as to analyze, or run studyhub analyze again"
            )
        final = out_dir / f"{study.id}-package"
        folder = out_dir / f".{study.id}-package.part"
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        _protocol_files(s, study, folder)
        _cases_files(s, study, folder, masks)
        _explanation_files(s, study, folder)
        write_tables(tidy, folder / "data", ("csv",))
        _audit_files(s, study, folder, report.render())
        _write_json(folder / "results" / "results.json", run.results)
        _write_json(
            folder / "results" / "analysis_run.json",
            {
                "id": run.id,
                "plan_hash": run.plan_hash,
                "started_at": run.started_at.isoformat(),
                "finished_at": run.finished_at.isoformat() if run.finished_at else None,
                "software": run.software,
                "results_sha256": hashlib.sha256(
                    canonical_results(run.results).encode()
                ).hexdigest(),
            },
        )
        env = _environment()
        _write_json(folder / "environment.json", env)
        inp = report_input(s, study, protocol, plan, run.results, tidy, env)
        write_report(inp, folder / "report")
    (folder / "README.txt").write_text(_readme(study.id), encoding="utf-8")
    hashes = _file_hashes(folder)  # each file hashed once: for the crate and SHA256SUMS
    _ro_crate(folder, study.id, study.title, hashes)
    hashes.update(_file_hashes(folder, only="ro-crate-metadata.json"))
    sums = _sha256sums(folder, hashes)
    if final.exists():
        shutil.rmtree(final)
    folder.replace(final)
    folder = final
    zip_path = out_dir / f"{study.id}-package.zip"
    _zip(folder, zip_path)
    with store.write() as s:
        row = s.get_one(Study, study.id)
        if row.state == "analyzed":
            lifecycle.advance(s, row, "packaged", actor=actor)
        append_event(
            s,
            actor=actor,
            action="package",
            study_id=row.id,
            payload={"sha256sums_sha256": sums, "analysis_run": run.id},
        )
    files = sum(1 for p in folder.rglob("*") if p.is_file())
    return PackageResult(study.id, folder, zip_path, files, sums)


def _refuse_identity_leaks(s: Session, study_id: str) -> None:
    from studyhub.rating.pseudonyms import identity_leaks

    leaks = identity_leaks(s, study_id)
    if leaks:
        raise InputError(
            f"the audit log of study {study_id!r} names rater accounts in {len(leaks)} event(s) "
            f"(e.g. {leaks[0]}): it was written by a studyhub before accounts were named by "
            "pseudonym, so its chain cannot go into an evidence package without revealing them; "
            "share the package only with those allowed to know the raters, or re-run the study "
            "with this version"
        )


def _protocol_files(s: Session, study: Study, folder: Path) -> None:
    d = folder / "protocol"
    d.mkdir(parents=True)
    (d / "protocol.yaml").write_text(study.protocol_text, encoding="utf-8")
    (d / "plan.yaml").write_text(study.plan_text, encoding="utf-8")
    _write_json(
        d / "registration.json",
        {
            "study_id": study.id,
            "registration_hash": study.registration_hash,
            "protocol_hash": study.protocol_hash,
            "plan_hash": study.plan_hash,
            "registered_at": study.registered_at.isoformat(),
            "canonical_version": CANONICAL_VERSION,
            "protocol_canonical": study.protocol_canonical,
            "plan_canonical": study.plan_canonical,
        },
    )
    amendments = s.scalars(
        select(Amendment).where(Amendment.study_id == study.id).order_by(Amendment.number)
    ).all()
    _write_json(
        d / "amendments.json",
        [
            {
                "number": a.number,
                "reason": a.reason,
                "old_hash": a.old_hash,
                "new_hash": a.new_hash,
                "created_at": a.created_at.isoformat(),
                "protocol_text": a.protocol_text,
                "plan_text": a.plan_text,
            }
            for a in amendments
        ],
    )


def _cases_files(
    s: Session, study: Study, folder: Path, masks: dict[int, np.ndarray] | None
) -> None:
    reports = [
        {"action": action, "payload": json.loads(payload)}
        for action, payload in s.execute(
            select(AuditEvent.action, AuditEvent.payload)
            .where(AuditEvent.study_id == study.id, AuditEvent.action.in_(("sample", "enroll")))
            .order_by(AuditEvent.seq)
        )
    ]
    _write_json(folder / "cases" / "sampling_report.json", reports)
    for case_id, mask in sorted((masks or {}).items()):
        path = folder / "cases" / "masks" / f"{case_pseudonym(case_id)}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        Image.fromarray(np.asarray(mask).astype(np.uint16)).save(buf, format="PNG")
        path.write_bytes(buf.getvalue())


def _explanation_files(s: Session, study: Study, folder: Path) -> None:
    rows = []
    (folder / "stimuli").mkdir(parents=True)
    for stim, arm in s.execute(
        select(Stimulus, Arm)
        .join(Arm, Arm.id == Stimulus.arm_id)
        .where(Stimulus.study_id == study.id)
        .order_by(Stimulus.id)
    ):
        if stim.image_png is not None:
            (folder / "stimuli" / f"{stim.code}.png").write_bytes(stim.image_png)
        rows.append(
            {
                "stimulus": stim.code,
                "case": case_pseudonym(stim.case_id),
                "arm": arm.arm_key,
                "kind": arm.kind,
                "method": arm.method,
                "params": arm.params,
                "seed": stim.seed,
                "duration_ms": stim.duration_ms,
                "attribution_sha256": stim.attribution_sha256,
                "image_sha256": hashlib.sha256(stim.image_png).hexdigest()
                if stim.image_png is not None
                else None,
                "provenance": stim.provenance,
                "metrics": stim.metrics,
            }
        )
    _write_jsonl(folder / "explanations" / "provenance.jsonl", rows)


def _audit_files(s: Session, study: Study, folder: Path, verification: list[str]) -> None:
    events = []
    for ev in s.scalars(select(AuditEvent).order_by(AuditEvent.seq)).yield_per(1000):
        mine = ev.study_id in (None, study.id)
        events.append(event_json(ev, sealed=not mine))
    _write_jsonl(folder / "audit" / "events.jsonl", events)
    for table, rows in study_rows(s, study.id).items():
        _write_jsonl(folder / "audit" / "rows" / f"{table}.jsonl", rows)
    head = events[-1] if events else {"seq": 0, "hash": ""}
    _write_json(folder / "audit" / "head.json", {"seq": head["seq"], "hash": head["hash"]})
    stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    (folder / "audit" / "verification.txt").write_text(
        f"studyhub audit verify at packaging ({stamp}):\n" + "\n".join(verification) + "\n",
        encoding="utf-8",
    )


def _environment() -> dict[str, Any]:
    env: dict[str, Any] = {"software": software_versions()}
    try:
        import torch

        env["device"] = {
            "cuda_available": bool(torch.cuda.is_available()),
            "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "torch_threads": torch.get_num_threads(),
        }
    except ImportError:  # pragma: no cover - torch is a dependency
        env["device"] = {}
    return env


def _readme(study_id: str) -> str:
    return (
        f"Evidence package of study {study_id}, written by studyhub {__version__}.\n\n"
        "Verify it offline, on any machine with studyhub installed:\n\n"
        f"    studyhub verify {study_id}-package.zip\n\n"
        "It checks every checksum, the audit chain and every packaged row against it, the "
        "registration hashes of the protocol and plan, and re-runs the analysis from the "
        "packaged data, comparing every number with results/results.json.\n\nLayout:"
        + PACKAGE_LAYOUT
    )


def _file_hashes(folder: Path, *, only: str | None = None) -> dict[str, str]:
    """Relative path -> SHA-256 of every file in ``folder`` (or of the one named ``only``)."""
    paths = [folder / only] if only is not None else sorted(folder.rglob("*"))
    return {
        p.relative_to(folder).as_posix(): sha256_file(p)
        for p in paths
        if p.is_file() and p.name != "SHA256SUMS"
    }


def _ro_crate(folder: Path, study_id: str, title: str, hashes: dict[str, str]) -> None:
    from rocrate.rocrate import ROCrate

    crate = ROCrate()
    crate.name = f"Evidence package of study {study_id}"
    crate.description = (
        f"{title}: registered protocol and plan, cases, explanations, stimuli, de-identified "
        "ratings, audit chain, analysis results and report, written by studyhub "
        f"{__version__}. Verify with: studyhub verify <this folder or its zip>."
    )
    for rel, digest in hashes.items():
        path = folder / rel
        crate.add_file(
            None,
            rel,
            properties={
                "name": rel,
                "contentSize": str(path.stat().st_size),
                "encodingFormat": _media_type(path),
                "sha256": digest,
                "description": _describe(rel),
            },
        )
    crate.metadata.write(folder)


_MEDIA = {
    ".csv": "text/csv",
    ".json": "application/json",
    ".jsonl": "application/jsonl",
    ".yaml": "application/yaml",
    ".png": "image/png",
    ".html": "text/html",
    ".pdf": "application/pdf",
    ".txt": "text/plain",
}


def _media_type(path: Path) -> str:
    return _MEDIA.get(path.suffix, "application/octet-stream")


def _describe(rel: str) -> str:
    top = rel.split("/", 1)[0]
    return {
        "protocol": "the protocol and analysis plan as registered, and their amendments",
        "cases": "the sampling report and region masks of the cases",
        "explanations": "provenance and quantitative metrics of every stimulus",
        "stimuli": "a stimulus as raters saw it (named by its opaque code)",
        "data": "the de-identified analysis data set and its dictionary",
        "audit": "the audit chain, the rows it binds and its verification",
        "results": "the analysis run against the registered plan",
        "report": "the study report",
    }.get(top, "package metadata")


def _sha256sums(folder: Path, hashes: dict[str, str]) -> str:
    lines = [f"{hashes[rel]}  {rel}" for rel in sorted(hashes, key=lambda r: Path(r).parts)]
    text = "\n".join(lines) + "\n"
    (folder / "SHA256SUMS").write_text(text, encoding="utf-8")
    return hashlib.sha256(text.encode()).hexdigest()


def _zip(folder: Path, zip_path: Path) -> None:
    tmp = zip_path.with_suffix(".zip.part")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, f"{folder.name}/{p.relative_to(folder).as_posix()}")
    tmp.replace(zip_path)
