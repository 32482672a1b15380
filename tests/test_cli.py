"""The command line: exit codes, messages, and nothing written on a failed command."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.paths import DEMO_PROTOCOL, ROOT


def test_validate_example_exits_0(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("validate", str(DEMO_PROTOCOL))
    assert result.exit_code == 0, result.output
    assert "OK: protocol 'inspection_demo'" in result.stdout


def test_register_prints_id_hash_and_utc_time(cli, tmp_path: Path, demo_copy: Path) -> None:  # type: ignore[no-untyped-def]
    db = f"sqlite:///{tmp_path / 's.db'}"
    result = cli("--db", db, "register", str(demo_copy))
    assert result.exit_code == 0, result.output
    assert "pre-flight OK" in result.stdout  # register runs the pre-flight by default
    assert "study inspection_demo registered" in result.stdout
    assert "hash " in result.stdout and "+00:00" in result.stdout
    again = cli("--db", db, "register", "--no-preflight", str(demo_copy))
    assert again.exit_code == 0 and "already registered (unchanged)" in again.stdout
    demo_copy.write_text(demo_copy.read_text().replace("seed: 20261126", "seed: 1"))
    refused = cli("--db", db, "register", "--no-preflight", str(demo_copy))
    assert refused.exit_code == 2
    assert "studyhub amend" in refused.stderr
    amended = cli(
        "--db", db, "amend", str(demo_copy), "--reason", "seed typo fixed before enrollment"
    )
    assert amended.exit_code == 0, amended.output
    assert "amendment 1 recorded" in amended.stdout
    status = cli("--db", db, "status")
    assert status.exit_code == 0 and "registered" in status.stdout
    assert cli("--db", db, "audit", "verify").exit_code == 0


def test_failed_commands_write_nothing(cli, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: x\n")
    for args in (
        ("validate", str(bad)),
        ("register", str(bad)),
        ("status",),
        ("audit", "verify"),
        ("close",),
    ):
        result = cli(*args)
        assert result.exit_code == 2, (args, result.output)
        assert result.stderr.startswith("error: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]


def test_env_var_selects_the_store(cli, tmp_path: Path, demo_copy: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("STUDYHUB_DB", f"sqlite:///{tmp_path / 'env.db'}")
    assert cli("register", "--no-preflight", str(demo_copy)).exit_code == 0
    assert (tmp_path / "env.db").exists()


@pytest.mark.parametrize(
    ("args", "phrase"),
    [
        (("--db", "nonsense://"), "cannot use database URL"),
        (("--db", "just words"), "not a SQLAlchemy URL"),
        (("--db", "sqlite://"), "in-memory SQLite"),
        (("--db", "sqlite:////no/such/folder/x.db"), "does not exist"),
    ],
)
def test_bad_database_urls(cli, demo_copy: Path, args: tuple[str, ...], phrase: str) -> None:  # type: ignore[no-untyped-def]
    result = cli(*args, "register", "--no-preflight", str(demo_copy))
    assert result.exit_code == 2
    assert phrase in result.stderr


def test_unreachable_postgres_is_an_error_not_a_traceback(cli, demo_copy: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli(
        "--db",
        "postgresql+psycopg://nobody@127.0.0.1:1/none",
        "register",
        "--no-preflight",
        str(demo_copy),
    )
    assert result.exit_code == 1
    assert "could not open the database" in result.stderr
    assert "Traceback" not in result.output


def test_usage_errors_exit_2(cli) -> None:  # type: ignore[no-untyped-def]
    assert cli("no-such-command").exit_code == 2
    assert cli("register").exit_code == 2
    assert cli("amend", str(DEMO_PROTOCOL)).exit_code == 2  # --reason missing


@pytest.mark.parametrize(
    "command", ["validate", "register", "amend", "status", "close", "audit", "demo"]
)
def test_every_command_has_help(cli, command: str) -> None:  # type: ignore[no-untyped-def]
    result = cli(command, "--help")
    assert result.exit_code == 0
    assert "Usage" in result.output


def test_console_script_runs() -> None:
    exe = Path(sys.executable).parent / "studyhub"
    proc = subprocess.run(
        [str(exe), "validate", str(DEMO_PROTOCOL)], capture_output=True, text=True, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr


@pytest.mark.slow
def test_demo_runs_the_pipeline_and_a_rerun_does_no_work(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli("demo", "--out", str(tmp_path / "demo"))
    assert result.exit_code == 0, result.output
    assert "40 cases enrolled" in result.stdout
    assert re.search(r"160 stimuli computed in \d+ s \(0 existed\)", result.stdout)  # 40 x 4 arms
    assert "audit chain OK" in result.stdout and "data rows OK" in result.stdout
    assert (tmp_path / "demo" / "studyhub.db").exists()
    # rated through the service layer, analysed against the registered plan, packaged, verified
    assert "[6/9] " in result.stdout and "answers" in result.stdout
    assert "study success: all primary endpoints passed" in result.stdout
    assert "package inspection_demo-package.zip: OK" in result.stdout
    assert (tmp_path / "demo" / "inspection_demo-package.zip").is_file()
    again = cli("demo", "--out", str(tmp_path / "demo"))
    assert again.exit_code == 0, again.output
    assert "40 cases already enrolled" in again.stdout
    assert re.search(r"\b0 stimuli computed in \d+ s \(160 existed\)", again.stdout)
    assert "[8/9] already analysed" in again.stdout
    assert "package inspection_demo-package.zip: OK" in again.stdout


def test_a_failed_first_registration_leaves_no_database_file(  # type: ignore[no-untyped-def]
    cli, demo_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from studyhub.store import studies

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(studies, "register", broken)
    db = tmp_path / "fresh.db"
    result = cli("--db", f"sqlite:///{db}", "register", "--no-preflight", str(demo_copy))
    assert result.exit_code == 1
    assert "internal error: RuntimeError: disk on fire" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("fresh")) == []


# --- messages print verbatim: no rich markup, no emoji codes ----------------------------


def test_file_names_with_emoji_codes_and_markup_print_verbatim(cli, demo_copy: Path) -> None:  # type: ignore[no-untyped-def]
    named = demo_copy.with_name("study:warning:v2 [bold]x[red].yaml")  # no "/" in a file name
    named.write_text(demo_copy.read_text())
    result = cli("validate", str(named))
    assert result.exit_code == 0, result.output
    assert f"({named})" in result.stdout
    assert "⚠" not in result.stdout


@pytest.mark.parametrize(
    "name", ["study:warning:v2.yaml", "[bold]nope[red].yaml", ":smile:[b].yaml"]
)
def test_errors_naming_such_files_exit_2_verbatim_and_write_nothing(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path, monkeypatch, name: str
) -> None:
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / name
    bad.write_text("id: x\nunknown_key: 1\n")
    result = cli("register", str(bad))
    assert result.exit_code == 2, result.output
    assert str(bad) in result.stderr and "⚠" not in result.stderr
    missing = cli("register", str(tmp_path / f"missing-{name}"))
    assert missing.exit_code == 2
    assert f"missing-{name}" in missing.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no database file


def test_rater_names_with_markup_list_verbatim(
    cli, tmp_path: Path, demo_copy: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("COLUMNS", "250")  # one table row per line
    db = f"sqlite:///{tmp_path / 's.db'}"
    assert cli("--db", db, "register", str(demo_copy)).exit_code == 0
    name = "Dr [bold]Ada[/] :warning:"
    added = cli("--db", db, "rater", "add", name, "--qual", "inspection_years=3")
    assert added.exit_code == 0, added.output
    assert f"added rater {name!r}" in added.stdout
    listed = cli("--db", db, "rater", "list")
    assert listed.exit_code == 0
    assert name in listed.stdout


def test_demo_out_under_a_file_exits_2_and_writes_nothing(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "file.txt").write_text("x")
    result = cli("demo", "--out", str(tmp_path / "file.txt" / "study"))
    assert result.exit_code == 2
    assert "--out" in result.stderr and "is a file, not a folder" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]
