"""The ``studyhub`` command: the only place that turns errors into exit codes.

Exit 0 on success, 2 on bad input (one message naming the problem and the fix),
1 on an internal failure. ``--db URL`` or ``STUDYHUB_DB`` selects the store.
"""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from studyhub import __version__
from studyhub.commands import assign as assign_commands
from studyhub.commands import cases as cases_commands
from studyhub.commands import evidence as evidence_commands
from studyhub.commands import explain as explain_commands
from studyhub.commands import plan as plan_commands
from studyhub.commands import rating as rating_commands
from studyhub.commands import serve as serve_commands
from studyhub.commands import stats as stats_commands
from studyhub.commands.render import plain_console
from studyhub.errors import StudyhubError

if TYPE_CHECKING:
    from studyhub.protocol.load import StudyFiles

__all__ = ["app", "main"]

app = typer.Typer(
    name="studyhub",
    help="Registered, blinded validation studies of vision-model explanations.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
app.add_typer(stats_commands.app, name="stats")

out: Console = plain_console()
err: Console = plain_console(stderr=True)


class State:
    """Options shared by every command."""

    db: str | None = None
    actor: str = "unknown"


state = State()

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        envvar="STUDYHUB_DB",
        help="SQLAlchemy URL of the store (default: sqlite:///studyhub.db in this folder).",
        show_envvar=True,
    ),
]
StudyOption = Annotated[
    str | None, typer.Option("--study", help="Study id (needed when the database holds several).")
]
ProtocolArg = Annotated[
    Path, typer.Argument(help="The protocol YAML file (it names its analysis plan).")
]


def _version(value: bool) -> None:
    if value:
        out.print(f"studyhub {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    db: DbOption = None,
    actor: Annotated[
        str | None,
        typer.Option(
            "--actor",
            envvar="STUDYHUB_ACTOR",
            help="Who is acting, for the audit log (default: the login name).",
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    state.db = db
    state.actor = actor or _login()


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER", "unknown")


# --- protocols -------------------------------------------------------------------


PreflightDataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        envvar="STUDYHUB_DATA",
        help="Folder sample will use for generated data (default: ./studyhub-data); the "
        "pre-flight reads a demo data set cached there and writes nothing.",
    ),
]


def _preflight(files: StudyFiles, data_dir: Path | None) -> None:
    """Run the pre-flight check; print what was checked, or raise every problem at once."""
    from studyhub.commands.cases import _data_dir
    from studyhub.commands.preflight import preflight

    # Text, not markup: steps name the user's files and entry point, shown as written
    with err.status(Text("pre-flight ...")) as spinner:
        report = preflight(
            files,
            data_dir=_data_dir(data_dir),
            progress=lambda step: spinner.update(Text(f"pre-flight: {step} ...")),
        )
    if not report.ok:
        raise report.error()
    out.print(f"pre-flight OK in {report.seconds:.1f} s:", markup=False)
    for line in report.checked:
        out.print(f"  {line}", markup=False)
    for line in report.not_checked:
        out.print(f"  not checked: {line}", markup=False)


@app.command()
def validate(
    protocol: Annotated[
        Path | None, typer.Argument(help="The protocol YAML file (it names its analysis plan).")
    ] = None,
    reference: Annotated[
        bool, typer.Option("--reference", help="Print the documented field reference and exit.")
    ] = False,
    preflight: Annotated[
        bool,
        typer.Option(
            "--preflight",
            help="Also run the protocol against its data and model: columns, splits, labels, "
            "quotas, the entry point, and a small batch through the model and every arm.",
        ),
    ] = False,
    data_dir: PreflightDataDir = None,
) -> None:
    """Check a protocol and its analysis plan, together; write nothing."""
    from studyhub.protocol.load import load_study
    from studyhub.protocol.reference import field_reference

    if reference:
        out.print(field_reference(), markup=False)
        return
    if protocol is None:
        raise _usage("validate needs a PROTOCOL file (or --reference)")
    files = load_study(protocol)
    for warning in files.warnings:
        err.print(f"warning: {warning}", markup=False)
    if preflight:
        _preflight(files, data_dir)
    out.print(
        f"OK: protocol {files.protocol.id!r} ({files.protocol_path}) and analysis plan "
        f"{files.plan.id!r} ({files.plan_path}) are valid",
        markup=False,
    )
    out.print(f"registration hash {files.registration_hash}", markup=False)


@app.command()
def register(
    protocol: ProtocolArg,
    preflight: Annotated[
        bool,
        typer.Option(
            "--preflight/--no-preflight",
            help="Run the pre-flight check (as validate --preflight) before anything is "
            "written; --no-preflight skips it.",
        ),
    ] = True,
    data_dir: PreflightDataDir = None,
) -> None:
    """Validate, pre-flight, canonicalise, hash and lock a protocol and its analysis plan."""
    from studyhub.protocol.load import load_study
    from studyhub.store.db import open_store
    from studyhub.store.studies import register as do_register

    files = load_study(protocol)
    if preflight:
        _preflight(files, data_dir)  # before the database is opened or created
    created = _new_sqlite_file(state.db)
    try:
        store = open_store(state.db)
        try:
            reg = do_register(store, files, actor=state.actor)
        finally:
            store.dispose()
    except BaseException:
        if created is not None:  # a failed first registration leaves no empty database
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{created}{suffix}").unlink(missing_ok=True)
        raise
    verb = "registered" if reg.created else "already registered (unchanged)"
    out.print(f"study {reg.study_id} {verb}", markup=False)
    out.print(f"hash {reg.registration_hash}", markup=False)
    out.print(f"registered at {reg.registered_at.isoformat(timespec='seconds')}", markup=False)


def _new_sqlite_file(url: str | None) -> Path | None:
    """The SQLite file ``url`` names when it does not exist yet (so a failure can remove it)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from studyhub.store.db import resolve_url

    try:
        parsed = make_url(resolve_url(url))
    except ArgumentError:
        return None  # open_store says what is wrong with it
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    path = Path(parsed.database)
    return None if path.exists() else path


@app.command()
def amend(
    protocol: ProtocolArg,
    reason: Annotated[str, typer.Option("--reason", help="Why the protocol or plan changes.")],
    preflight: Annotated[
        bool,
        typer.Option(
            "--preflight/--no-preflight",
            help="Run the pre-flight check on the amended protocol before anything is "
            "written; --no-preflight skips it.",
        ),
    ] = True,
    data_dir: PreflightDataDir = None,
) -> None:
    """Record a change of a registered protocol or plan (refused after unblinding)."""
    from studyhub.protocol.load import load_study
    from studyhub.store.db import open_store
    from studyhub.store.studies import amend as do_amend

    files = load_study(protocol)
    if preflight:
        _preflight(files, data_dir)  # an amendment is permanent: check it before it is made
    store = open_store(state.db, create=False)
    try:
        reg = do_amend(store, files, reason=reason, actor=state.actor)
    finally:
        store.dispose()
    out.print(f"study {reg.study_id} amendment {reg.amendment} recorded", markup=False)
    out.print(f"hash {reg.registration_hash}", markup=False)
    out.print(f"amended at {reg.registered_at.isoformat(timespec='seconds')}", markup=False)


@app.command()
def status(study: StudyOption = None) -> None:
    """Show a study's state and counts, without unblinding anything."""
    from studyhub.store.db import open_store
    from studyhub.store.studies import status as do_status

    store = open_store(state.db, create=False)
    try:
        st = do_status(store, study)
    finally:
        store.dispose()
    table = Table(title=Text(f"{st.study_id}: {st.title}"), show_header=False)
    ok = st.registration_check.startswith("OK")
    rows = {
        "state": st.state,
        "design": st.design,
        "registered": st.registered_at.isoformat(timespec="seconds"),
        "hash": st.registration_hash,
        "amendments": str(st.amendments),
        **{key: str(value) for key, value in st.counts.items()},
        "registration": "matches the audit log" if ok else "FAILED (see below)",
    }
    for key, value in rows.items():
        table.add_row(Text(key), Text(value))
    out.print(table)
    if not ok:
        err.print(st.registration_check, markup=False)
        raise typer.Exit(1)


@app.command()
def close(study: StudyOption = None) -> None:
    """End rating: no further responses are accepted."""
    from studyhub.store.db import open_store
    from studyhub.store.studies import close as do_close

    store = open_store(state.db, create=False)
    try:
        closed = do_close(store, study, actor=state.actor)
    finally:
        store.dispose()
    out.print(f"study {closed.id} closed", markup=False)


@audit_app.command("verify")
def audit_verify(
    anchor_file: Annotated[
        Path | None,
        typer.Option(
            "--anchor",
            help="A head kept outside the database (from studyhub audit anchor --out): the "
            "chain must still hold that event with that hash.",
        ),
    ] = None,
) -> None:
    """Check the audit chain and every data row against it; print OK or every discrepancy."""
    from studyhub.store.db import open_store
    from studyhub.store.verify import check_anchor, read_anchor, verify_store

    expected = read_anchor(anchor_file) if anchor_file is not None else None
    store = open_store(state.db, create=False)
    try:
        with store.snapshot() as s:
            report = verify_store(s)
            anchored = check_anchor(s, expected) if expected is not None else None
    finally:
        store.dispose()
    lines = report.render()
    if anchored is not None:
        lines.append(anchored)
    ok = report.ok and (anchored is None or anchored.startswith("anchor OK"))
    for line in lines:
        (out if ok else err).print(line, markup=False)
    if not ok:
        raise typer.Exit(1)


@audit_app.command("anchor")
def audit_anchor(
    out_file: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Also write the head as JSON to this file, for a witness to keep."
        ),
    ] = None,
) -> None:
    """Print the chain's head (sequence number, hash, UTC time) to keep outside the database."""
    import json

    from studyhub.commands.outputs import writable_file
    from studyhub.store.db import open_store
    from studyhub.store.verify import anchor

    if out_file is not None:
        writable_file(out_file, option="--out")
    store = open_store(state.db, create=False)
    try:
        with store.snapshot() as s:
            head = anchor(s)
    finally:
        store.dispose()
    text = json.dumps(head.to_json(), indent=2)
    if out_file is not None:
        out_file.write_text(text + "\n", encoding="utf-8")
    out.print(text, markup=False)


cases_commands.register_commands(app, state, out)
plan_commands.register_commands(app, out)
explain_commands.register_commands(app, state, out)
assign_commands.register_commands(app, state, out)
rating_commands.register_commands(app, state, out)
serve_commands.register_commands(app, state, out)
evidence_commands.register_commands(app, state, out)


@app.command()
def demo(
    out_dir: Annotated[
        Path, typer.Option("--out", help="Folder for the demo study's database and files.")
    ] = Path("demo-study"),
) -> None:
    """Run the built-in demo study as far as the pipeline goes."""
    from studyhub.commands.outputs import writable_folder
    from studyhub.demo.run import run_demo

    run_demo(writable_folder(out_dir, option="--out"), console=out)


# --- entry point -----------------------------------------------------------------


def _usage(message: str) -> StudyhubError:
    from studyhub.errors import InputError

    return InputError(message)


def main(argv: list[str] | None = None) -> NoReturn:
    """Run the command line; map studyhub errors to exit codes 2 (input) and 1."""
    try:
        rc = app(args=argv, standalone_mode=False)
    except StudyhubError as exc:
        err.print(f"error: {exc}", markup=False)
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err.print("aborted")
        sys.exit(1)
    except typer.TyperException as exc:  # usage errors (click's, vendored by typer): exit 2
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            err.print(f"error: {exc.format_message()}", markup=False)
        sys.exit(exc.exit_code)
    except Exception as exc:
        if os.environ.get("STUDYHUB_DEBUG"):
            raise
        err.print(f"internal error: {type(exc).__name__}: {exc}", markup=False)
        err.print("this is a bug in studyhub; rerun with STUDYHUB_DEBUG=1 and report the traceback")
        sys.exit(1)
    sys.exit(rc if isinstance(rc, int) else 0)
