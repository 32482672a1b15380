"""``studyhub verify PACKAGE``: check an evidence package offline, trusting nothing in it.

Runs on any machine with studyhub installed, without the store that wrote the
package. It checks, and reports every discrepancy it finds (naming the file):

1. *checksums*: every file listed in ``SHA256SUMS`` is present with that SHA-256,
   and no file is unlisted;
2. *the audit chain*: sequence numbers run from 1 without gaps, each event links
   to the one before, each event of the study (and each study-less event) re-hashes
   to its hash, and the last is the recorded head;
3. *the rows*: every packaged row re-hashes to the digest the chain recorded last
   for it, every row the study's events recorded is present, and every stimulus
   image matches its row;
4. *the registration*: the packaged protocol and plan texts are the registered
   ones, their canonical forms re-hash to the registered hashes, and those combine
   to the registration hash the chain recorded;
5. *the analysis*: the packaged rows are loaded into a scratch database, the
   analysis data set is derived from them with the code ``analyze`` uses and
   compared with ``data/``, and the analysis is run again and compared, number by
   number, with ``results/results.json`` (which must also be the analysis run's
   stored row).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import math
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session

from studyhub.errors import InputError
from studyhub.evidence.package_rows import (
    decode_value,
    load_scratch,
    read_jsonl,
    row_digest_problems,
)

__all__ = ["VerifyReport", "verify_package"]

#: Relative tolerance of a re-computed number (different BLAS builds round differently).
RTOL = 1e-9


@dataclass
class VerifyReport:
    """What ``verify`` found: every check's line, and every discrepancy."""

    package: str
    checks: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def render(self) -> list[str]:
        if self.ok:
            return [f"package {self.package}: OK", *(f"  {c}" for c in self.checks)]
        return [
            f"package {self.package}: {len(self.problems)} problem(s)",
            *(f"  {p}" for p in self.problems),
        ]


@contextmanager
def _opened(path: Path) -> Iterator[Path]:
    """The package folder: ``path`` itself, or a zip's single top folder unpacked."""
    if path.is_dir():
        yield path
        return
    if not path.is_file():
        raise InputError(
            f"package {str(path)!r} does not exist; give the package folder or its .zip"
        )
    if not zipfile.is_zipfile(path):
        raise InputError(
            f"{str(path)!r} is neither a folder nor a zip file; give the package folder or its .zip"
        )
    with tempfile.TemporaryDirectory(prefix="studyhub-verify-") as tmp, zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        bad = [n for n in names if n.startswith("/") or ".." in Path(n).parts]
        tops = {Path(n).parts[0] for n in names if Path(n).parts}
        if bad or len(tops) != 1:
            why = "unsafe paths" if bad else "not one top folder"
            raise InputError(
                f"{path.name} is not an evidence package zip ({why}: "
                f"{(bad or sorted(tops))[:3]}); give a zip written by studyhub package"
            )
        zf.extractall(tmp)
        yield Path(tmp) / tops.pop()


def verify_package(path: Path) -> VerifyReport:
    """Check the package at ``path`` (a folder or its zip); see the module docstring."""
    with _opened(path) as root:
        report = VerifyReport(path.name)
        if not (root / "SHA256SUMS").is_file():
            raise InputError(
                f"{path} holds no SHA256SUMS: it is not an evidence package written by "
                "studyhub package"
            )
        _checksums(root, report)
        try:
            events = read_jsonl(root / "audit" / "events.jsonl")
            rows = {
                p.stem: read_jsonl(p) for p in sorted((root / "audit" / "rows").glob("*.jsonl"))
            }
            registration = json.loads((root / "protocol" / "registration.json").read_text())
            results = json.loads((root / "results" / "results.json").read_text())
        except (OSError, ValueError, KeyError) as exc:
            report.problems.append(f"the package's records cannot be read: {exc}")
            return report
        study_id = str(registration.get("study_id"))
        blobs = _blobs(root, rows)  # the stimulus images, read once
        recorded: dict[tuple[str, str], str | None] = {}
        mine: set[tuple[str, str]] = set()
        steps = (
            ("audit/events.jsonl", lambda: _chain(events, root, study_id, report)),
            ("audit/rows", lambda: _rows(blobs, rows, recorded, mine, report)),
            ("protocol/", lambda: _registration(root, registration, rows, events, report)),
            ("results/", lambda: _analysis(root, rows, events, results, study_id, blobs, report)),
        )
        for where, step in steps:
            try:
                out = step()
            except (KeyError, TypeError, ValueError, AttributeError, IndexError, OSError) as exc:
                report.problems.append(
                    f"{where}: malformed ({type(exc).__name__}: {exc}); the package was not "
                    "written by studyhub package or was edited"
                )
                continue
            if where == "audit/events.jsonl" and out is not None:
                recorded, mine = out
        return report


def _checksums(root: Path, report: VerifyReport) -> None:
    listed: dict[str, str] = {}
    for line in (root / "SHA256SUMS").read_text(encoding="utf-8").splitlines():
        digest, _, name = line.partition("  ")
        listed[name] = digest
    present = {
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and p.name != "SHA256SUMS"
    }
    for name, digest in sorted(listed.items()):
        path = root / name
        if name not in present:
            report.problems.append(f"{name}: listed in SHA256SUMS but missing")
        elif hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            report.problems.append(f"{name}: SHA-256 differs from SHA256SUMS (the file changed)")
    for name in sorted(present - set(listed)):
        report.problems.append(f"{name}: not listed in SHA256SUMS (added after packaging)")
    report.checks.append(f"checksums: {len(listed)} files match SHA256SUMS")


def _chain(
    events: list[dict[str, Any]], root: Path, study_id: str, report: VerifyReport
) -> tuple[dict[tuple[str, str], str | None], set[tuple[str, str]]]:
    """Check the chain; return the last digest recorded per row and the study's own rows."""
    from studyhub.store.audit import GENESIS, event_hash

    recorded: dict[tuple[str, str], str | None] = {}
    mine: set[tuple[str, str]] = set()
    prev = GENESIS
    broken = 0
    for n, ev in enumerate(sorted(events, key=lambda e: int(e["seq"])), 1):
        where = f"audit/events.jsonl event {ev['seq']}"
        if int(ev["seq"]) != n:
            report.problems.append(f"{where}: expected sequence {n} (events deleted or inserted)")
            broken += 1
        if ev["prev_hash"] != prev:
            report.problems.append(f"{where}: does not link to the event before it")
            broken += 1
        if not ev.get("sealed"):
            again = event_hash(
                seq=int(ev["seq"]),
                study_id=ev["study_id"],
                actor=ev["actor"],
                action=ev["action"],
                payload=ev["payload"],
                created_at=dt.datetime.fromisoformat(ev["created_at"]),
                prev_hash=ev["prev_hash"],
                rows=ev["rows"],
            )
            if again != ev["hash"]:
                report.problems.append(f"{where}: its content does not match its hash (edited)")
                broken += 1
            for table, entries in json.loads(ev["rows"] or "{}").items():
                for key, value in entries.items():
                    recorded[(table, key)] = None if value is None else value["sha256"]
                    if ev["study_id"] == study_id:
                        mine.add((table, key))
        prev = ev["hash"]
    head = json.loads((root / "audit" / "head.json").read_text())
    if events and (head.get("hash") != prev or int(head.get("seq", -1)) != len(events)):
        report.problems.append("audit/head.json: the chain does not end at the recorded head")
        broken += 1
    if not broken:
        sealed = sum(1 for e in events if e.get("sealed"))
        report.checks.append(
            f"audit chain: {len(events)} events link and re-hash ({sealed} of other studies "
            f"sealed to their hashes), head {prev}"
        )
    return recorded, mine


def _rows(
    blobs: dict[tuple[str, str, str], bytes],
    rows: dict[str, list[dict[str, Any]]],
    recorded: dict[tuple[str, str], str | None],
    mine: set[tuple[str, str]],
    report: VerifyReport,
) -> None:
    problems, proven, withheld = row_digest_problems(rows, recorded, mine)
    report.problems.extend(p.render() for p in problems)
    for entry in rows.get("stimulus", []):
        code = decode_value(entry["values"]["code"])
        blob = entry["values"].get("image_png")
        if blob is None:
            continue
        data = blobs.get(("stimulus", str(entry["pk"]), "image_png"))
        if data is None:
            report.problems.append(f"stimuli/{code}.png: missing (stimulus row {entry['pk']})")
            continue
        if blob != f"bytes:{len(data)}:{hashlib.sha256(data).hexdigest()}":
            report.problems.append(
                f"stimuli/{code}.png: not the image of stimulus row {entry['pk']} in the chain"
            )
    if not problems:
        report.checks.append(
            f"rows: {proven} rows re-hash to the digests the chain recorded ({withheld} rater "
            "account rows withheld: identities are not in the package)"
        )


def _registration(
    root: Path,
    registration: dict[str, Any],
    rows: dict[str, list[dict[str, Any]]],
    events: list[dict[str, Any]],
    report: VerifyReport,
) -> None:
    from studyhub.protocol.load import CANONICAL_VERSION, sha256_text

    before = len(report.problems)
    study = {c: decode_value(v) for c, v in rows.get("study", [{}])[0].get("values", {}).items()}
    ph, plh = (
        sha256_text(registration["protocol_canonical"]),
        sha256_text(registration["plan_canonical"]),
    )
    reg = sha256_text(f"{registration['canonical_version']}\nprotocol {ph}\nplan {plh}\n")
    checks = {
        "protocol/protocol.yaml": (root / "protocol" / "protocol.yaml").read_text(encoding="utf-8")
        == study.get("protocol_text"),
        "protocol/plan.yaml": (root / "protocol" / "plan.yaml").read_text(encoding="utf-8")
        == study.get("plan_text"),
        "protocol/registration.json (protocol hash)": ph == registration["protocol_hash"]
        and ph == study.get("protocol_hash"),
        "protocol/registration.json (plan hash)": plh == registration["plan_hash"]
        and plh == study.get("plan_hash"),
        "protocol/registration.json (registration hash)": reg == registration["registration_hash"]
        and reg == study.get("registration_hash"),
        "protocol/registration.json (canonical texts)": registration["protocol_canonical"]
        == study.get("protocol_canonical")
        and registration["plan_canonical"] == study.get("plan_canonical"),
    }
    for where, ok in checks.items():
        if not ok:
            report.problems.append(f"{where}: does not match the registered study row")
    recorded = None
    for ev in events:
        if ev.get("sealed") or ev.get("study_id") != registration["study_id"]:
            continue
        if ev["action"] in ("register", "amend"):
            body = json.loads(ev["payload"])
            recorded = body.get("registration_hash" if ev["action"] == "register" else "new_hash")
    if recorded != reg:
        report.problems.append(
            "protocol/registration.json: the registration hash is not the one the audit chain "
            "recorded at registration (or the last amendment)"
        )
    if registration["canonical_version"] != CANONICAL_VERSION:
        report.checks.append(
            f"registration: canonical version {registration['canonical_version']} (this "
            f"studyhub writes {CANONICAL_VERSION})"
        )
    if len(report.problems) == before:
        report.checks.append(f"registration: protocol and plan re-hash to {reg}")


def _analysis(
    root: Path,
    rows: dict[str, list[dict[str, Any]]],
    events: list[dict[str, Any]],
    results: dict[str, Any],
    study_id: str,
    blobs: dict[tuple[str, str, str], bytes],
    report: VerifyReport,
) -> None:
    from studyhub.evidence.analyze import json_safe, registered_plan_of, results_from_session
    from studyhub.evidence.export import _csv_bytes, data_dictionary
    from studyhub.protocol.schema import Protocol
    from studyhub.store.models import AnalysisRun, Study

    runs = rows.get("analysis_run", [])
    if not runs or decode_value(runs[-1]["values"]["results"]) != results:
        report.problems.append(
            "results/results.json: not the results of the last analysis run the chain recorded"
        )
    engine = load_scratch(rows, events, blobs)
    try:
        with Session(engine) as s:
            study = s.get(Study, study_id)
            if study is None:
                report.problems.append("audit/rows/study.jsonl: the study's row is missing")
                return
            protocol = Protocol.model_validate_json(study.protocol_canonical)
            plan = registered_plan_of(study)
            masks = _masks(root)
            again, tidy = results_from_session(s, study, protocol, plan, masks)
            last = s.scalars(select(AnalysisRun).order_by(AnalysisRun.id.desc())).first()
            stored = last.results if last is not None else {}
    finally:
        engine.dispose()
    for name, frame in {**tidy.tables(), "data_dictionary": data_dictionary(tidy)}.items():
        path = root / "data" / f"{name}.csv"
        if not path.is_file():
            report.problems.append(f"data/{name}.csv: missing")
        elif path.read_bytes() != _csv_bytes(frame):
            report.problems.append(
                f"data/{name}.csv: differs from the data derived from the audited rows"
            )
    for key in ("unblinded_at", "unblinded_by", "unblinding_reason"):
        again[key] = stored.get(key)
    diffs = list(_compare(json_safe(again), results, "results"))
    for d in diffs[:50]:
        report.problems.append(f"results/results.json: {d}")
    if len(diffs) > 50:
        report.problems.append(f"results/results.json: ... and {len(diffs) - 50} more differences")
    if not diffs:
        n = sum(1 for _ in _numbers(results))
        report.checks.append(
            f"analysis: re-run from the packaged rows; data/ and all {n} numbers of "
            "results/results.json reproduced"
        )


def _blobs(root: Path, rows: dict[str, list[dict[str, Any]]]) -> dict[tuple[str, str, str], bytes]:
    out: dict[tuple[str, str, str], bytes] = {}
    for entry in rows.get("stimulus", []):
        code = entry.get("values", {}).get("code") if isinstance(entry, dict) else None
        if not isinstance(code, str) or not code.startswith("str:"):
            continue  # a malformed row: the rows check names it
        path = root / "stimuli" / f"{decode_value(code)}.png"
        if path.is_file():
            out[("stimulus", str(entry["pk"]), "image_png")] = path.read_bytes()
    return out


def _masks(root: Path) -> dict[int, np.ndarray] | None:
    folder = root / "cases" / "masks"
    if not folder.is_dir():
        return None
    return {
        int(p.stem.removeprefix("case-")): np.asarray(Image.open(io.BytesIO(p.read_bytes())))
        for p in sorted(folder.glob("case-*.png"))
    }


def _numbers(value: Any) -> Iterator[float]:
    if isinstance(value, dict):
        for v in value.values():
            yield from _numbers(v)
    elif isinstance(value, list):
        for v in value:
            yield from _numbers(v)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield float(value)


def _compare(a: Any, b: Any, path: str) -> Iterator[str]:
    """Every place where the re-computed ``a`` differs from the packaged ``b``."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in b:
                yield f"{path}.{k}: missing from the package"
            elif k not in a:
                yield f"{path}.{k}: not produced by the analysis"
            else:
                yield from _compare(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            yield f"{path}: {len(b)} entries, the re-run gives {len(a)}"
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            yield from _compare(x, y, f"{path}[{i}]")
    elif (
        isinstance(a, int | float)
        and isinstance(b, int | float)
        and not isinstance(a, bool)
        and not isinstance(b, bool)
    ):
        if not math.isclose(float(a), float(b), rel_tol=RTOL, abs_tol=1e-12):
            yield f"{path}: {b!r} in the package, {a!r} re-computed"
    elif a != b:
        yield f"{path}: {b!r} in the package, {a!r} re-computed"
