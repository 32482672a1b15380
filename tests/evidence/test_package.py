"""close -> analyze -> package -> verify on a study rated through the service layer, and tampering.

Every way of changing a package after it was written must make ``verify`` fail
and name the file: a byte of any file, a row of the audited data (with the
checksums recomputed to hide it), a number of the results, an audit event.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from studyhub.evidence.analyze import analyze_study
from studyhub.evidence.package import PackageResult, build_package
from studyhub.evidence.verify import verify_package
from tests.evidence.conftest import Rated


@pytest.fixture
def packaged(rated: Rated, tmp_path: Path) -> PackageResult:
    analyze_study(rated.store, None, actor="lead", reason="primary analysis")
    return build_package(rated.store, None, tmp_path / "out", actor="lead")


def _copy(pkg: PackageResult, tmp_path: Path, name: str) -> Path:
    target = tmp_path / name / pkg.folder.name
    shutil.copytree(pkg.folder, target)
    return target


def _reseal(folder: Path) -> None:
    """Recompute SHA256SUMS, as someone hiding an edit would."""
    lines = [
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(folder).as_posix()}"
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != "SHA256SUMS"
    ]
    (folder / "SHA256SUMS").write_text("\n".join(lines) + "\n")


def test_package_holds_what_the_issue_lists_and_verifies(
    packaged: PackageResult, rated: Rated, cli
) -> None:  # type: ignore[no-untyped-def]
    folder = packaged.folder
    for rel in (
        "protocol/protocol.yaml",
        "protocol/plan.yaml",
        "protocol/registration.json",
        "protocol/amendments.json",
        "cases/sampling_report.json",
        "explanations/provenance.jsonl",
        "data/answers.csv",
        "data/marks.csv",
        "data/cases.csv",
        "data/data_dictionary.csv",
        "audit/events.jsonl",
        "audit/head.json",
        "audit/verification.txt",
        "audit/rows/response.jsonl",
        "results/results.json",
        "results/analysis_run.json",
        "report/report.html",
        "report/report.pdf",
        "environment.json",
        "ro-crate-metadata.json",
        "SHA256SUMS",
        "README.txt",
    ):
        assert (folder / rel).is_file(), rel
    assert len(list((folder / "stimuli").glob("*.png"))) == 4 * rated.n_cases
    # the RO-Crate describes every file with its checksum
    crate = json.loads((folder / "ro-crate-metadata.json").read_text())
    described = {e["@id"]: e for e in crate["@graph"] if e.get("@type") == "File"}
    for p in folder.rglob("*"):
        rel = p.relative_to(folder).as_posix()
        if p.is_file() and rel not in ("SHA256SUMS", "ro-crate-metadata.json"):
            assert described[rel]["sha256"] == hashlib.sha256(p.read_bytes()).hexdigest()
    # nothing names a rater account or a token
    blob = b"".join(p.read_bytes() for p in folder.rglob("*") if p.is_file())
    with zipfile.ZipFile(packaged.zip_path) as zf:
        blob += b"".join(zf.read(n) for n in zf.namelist())
    for name, token in rated.tokens.items():
        assert name.encode() not in blob, name
        assert token.encode() not in blob
        assert token[:8].encode() not in blob  # the token hint
    # the CLI verifies the folder and the zip, offline (no --db)
    for target in (folder, packaged.zip_path):
        res = cli("verify", str(target))
        assert res.exit_code == 0, res.stdout
        assert res.stdout.splitlines()[0].endswith(": OK")
        assert "all" in res.stdout and "numbers of results/results.json reproduced" in res.stdout


def test_any_changed_byte_fails_verify_naming_the_file(
    packaged: PackageResult, tmp_path: Path
) -> None:
    files = sorted(p.relative_to(packaged.folder).as_posix() for p in packaged.folder.rglob("*"))
    # one file of every kind the package holds
    picks = {}
    for rel in files:
        if (packaged.folder / rel).is_file() and rel != "SHA256SUMS":
            picks.setdefault(rel.split("/")[0] + Path(rel).suffix, rel)
    assert len(picks) >= 12
    for n, rel in enumerate(sorted(picks.values())):
        folder = _copy(packaged, tmp_path, f"byte{n}")
        path = folder / rel
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
        report = verify_package(folder)
        assert not report.ok, rel
        assert any(p.startswith(f"{rel}: SHA-256 differs") for p in report.problems), (
            rel,
            report.problems,
        )


def test_an_edited_audited_row_fails_verify_even_with_checksums_recomputed(
    packaged: PackageResult, tmp_path: Path
) -> None:
    folder = _copy(packaged, tmp_path, "row")
    path = folder / "audit" / "rows" / "response.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    answers = json.loads(rows[-1]["values"]["answers"].removeprefix("json:"))
    answers["usefulness"] = 1 if answers["usefulness"] != 1 else 5
    rows[-1]["values"]["answers"] = "json:" + json.dumps(
        answers, sort_keys=True, separators=(",", ":")
    )
    path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    _reseal(folder)
    problems = verify_package(folder).problems
    assert (
        f"audit/rows/response.jsonl row {rows[-1]['pk']}: does not match the digest the audit chain recorded"
        in problems
    )
    # the packaged data no longer agree with the (edited) rows either
    assert "data/answers.csv: differs from the data derived from the audited rows" in problems


def test_a_changed_result_fails_verify_even_with_checksums_recomputed(
    packaged: PackageResult, tmp_path: Path
) -> None:
    folder = _copy(packaged, tmp_path, "result")
    path = folder / "results" / "results.json"
    results = json.loads(path.read_text())
    first = results["criteria"]["results"][0]
    first["p_adjusted"] = 0.001 if first["p_adjusted"] != 0.001 else 0.002
    path.write_text(json.dumps(results, indent=2, sort_keys=True))
    _reseal(folder)
    problems = verify_package(folder).problems
    assert "results/results.json: not the results of the last analysis run the chain recorded" in (
        problems
    )
    assert any(
        p.startswith("results/results.json: results.criteria.results[0].p_adjusted:")
        for p in problems
    ), problems


def test_an_edited_audit_event_breaks_the_chain(packaged: PackageResult, tmp_path: Path) -> None:
    folder = _copy(packaged, tmp_path, "event")
    path = folder / "audit" / "events.jsonl"
    events = [json.loads(line) for line in path.read_text().splitlines()]
    victim = next(e for e in events if e.get("action") == "analysis_run")
    victim["actor"] = "someone-else"
    path.write_text("".join(json.dumps(e, sort_keys=True) + "\n" for e in events))
    _reseal(folder)
    problems = verify_package(folder).problems
    assert (
        f"audit/events.jsonl event {victim['seq']}: its content does not match its hash (edited)"
        in problems
    )
    # a deleted event shows as a gap
    folder = _copy(packaged, tmp_path, "gap")
    path = folder / "audit" / "events.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:5] + lines[6:]) + "\n")
    _reseal(folder)
    problems = verify_package(folder).problems
    assert any("expected sequence 6 (events deleted or inserted)" in p for p in problems)


def test_an_edited_protocol_text_is_found(packaged: PackageResult, tmp_path: Path) -> None:
    folder = _copy(packaged, tmp_path, "protocol")
    path = folder / "protocol" / "plan.yaml"
    path.write_text(path.read_text().replace("threshold: 0.4", "threshold: 0.1"))
    _reseal(folder)
    assert "protocol/plan.yaml: does not match the registered study row" in (
        verify_package(folder).problems
    )


def test_package_refuses_before_analysis_and_bad_paths(
    make_rated: Callable[..., Rated], cli, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    r = make_rated()
    out = tmp_path / "out"
    res = cli("--db", r.store.url, "package", "--out", str(out))
    assert res.exit_code == 2
    assert "cannot package: study 'inspection_demo' is closed" in res.stderr
    assert not out.exists()
    for bad, message in (
        (tmp_path / "missing.zip", "does not exist; give the package folder or its .zip"),
        (tmp_path / "plain.txt", "is neither a folder nor a zip file"),
        (tmp_path, "holds no SHA256SUMS: it is not an evidence package"),
    ):
        if bad.suffix == ".txt":
            bad.write_text("hello")
        res = cli("verify", str(bad))
        assert res.exit_code == 2
        assert message in res.stderr


def test_verify_refuses_a_zip_with_unsafe_paths(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../outside.txt", "x")
    res = cli("verify", str(evil))
    assert res.exit_code == 2
    assert "is not an evidence package zip (unsafe paths" in res.stderr
    assert not (tmp_path.parent / "outside.txt").exists()


def test_package_refuses_an_audit_log_that_names_a_rater(rated: Rated, cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # a store written before accounts were named by pseudonym: an event naming a rater
    from studyhub.store.audit import append_event

    analyze_study(rated.store, None, actor="lead", reason="primary analysis")
    with rated.store.write() as s:
        append_event(
            s, actor="lead", action="note", study_id="inspection_demo", payload={"who": "dr_c"}
        )
    out = tmp_path / "out"
    res = cli("--db", rated.store.url, "package", "--out", str(out))
    assert res.exit_code == 2
    assert "names rater accounts in 1 event(s)" in res.stderr
    assert "dr_c" not in res.stderr  # the refusal itself names no one
    assert not out.exists() or not any(out.iterdir())


def test_a_malformed_record_is_reported_not_crashed_on(
    packaged: PackageResult, tmp_path: Path, cli
) -> None:  # type: ignore[no-untyped-def]
    folder = _copy(packaged, tmp_path, "garbage")
    (folder / "audit" / "events.jsonl").write_text('{"seq": 1}\n')
    _reseal(folder)
    res = cli("verify", str(folder))
    assert res.exit_code == 2
    assert "audit/events.jsonl: malformed (KeyError: 'prev_hash')" in res.stdout
