"""``studyhub serve``: run the Streamlit rater app for a study in ``rating``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Annotated, Any, Final

import typer
from rich.console import Console

from studyhub.errors import InputError

__all__ = ["APP_SCRIPT", "register_commands", "streamlit_command"]

#: The app's entry script, run by ``streamlit run``.
APP_SCRIPT: Final = Path(__file__).resolve().parents[1] / "app" / "main.py"
_STOP_GRACE_S = 10


def streamlit_command(port: int, address: str, secrets: Path | None = None) -> list[str]:
    """The command line that serves the app.

    Parameters
    ----------
    port : int
        The port to listen on.
    address : str
        The address to bind (``127.0.0.1`` keeps it on this machine).
    secrets : Path, optional
        A ``secrets.toml`` to read (its ``[auth]`` section configures single
        sign-on); by default Streamlit reads ``.streamlit/secrets.toml`` in the
        working folder and in the home folder.

    Returns
    -------
    list of str
        ``python -m streamlit run .../app/main.py`` with headless options,
        usage statistics off and Streamlit's developer toolbar hidden from raters
        (``client.toolbarMode`` ``minimal``: no "Deploy", no rerun or settings menu).
    """
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP_SCRIPT),
        "--server.port",
        str(port),
        "--server.address",
        address,
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--client.toolbarMode",
        "minimal",
        *(["--secrets.files", str(secrets)] if secrets is not None else []),
    ]


def _run(cmd: list[str], env: dict[str, str]) -> int:
    """Run the server in the foreground and return its exit code.

    Ctrl+C reaches the server too (same process group) and it stops on its own;
    SIGTERM to this process (a service manager stopping it) is passed on, so the
    server never outlives the command.
    """
    proc = subprocess.Popen(cmd, env=env)
    forward = threading.current_thread() is threading.main_thread()
    previous: Any = None
    if forward:
        previous = signal.signal(signal.SIGTERM, lambda _sig, _frame: proc.terminate())
    try:
        while True:
            try:
                return proc.wait()
            except KeyboardInterrupt:
                try:
                    return proc.wait(timeout=_STOP_GRACE_S)
                except subprocess.TimeoutExpired:
                    proc.terminate()
    finally:
        if forward:
            signal.signal(signal.SIGTERM, previous)
        if proc.poll() is None:  # pragma: no cover - only on an unexpected error
            proc.kill()
            proc.wait()


def register_commands(app: typer.Typer, state: Any, out: Console) -> None:
    """Add ``serve`` to the main app."""

    @app.command()
    def serve(
        study: Annotated[
            str | None,
            typer.Option("--study", help="Study id (needed when the database holds several)."),
        ] = None,
        port: Annotated[
            int, typer.Option("--port", min=1, max=65535, help="Port to listen on.")
        ] = 8501,
        address: Annotated[
            str,
            typer.Option("--address", help="Address to bind; 0.0.0.0 serves other machines too."),
        ] = "127.0.0.1",
        secrets: Annotated[
            Path | None,
            typer.Option(
                "--secrets",
                help="A secrets.toml whose [auth] section configures single sign-on "
                "(docs/single-sign-on.md); default: .streamlit/secrets.toml.",
            ),
        ] = None,
    ) -> None:
        """Serve the rater app (Streamlit) for a study in rating; Ctrl+C stops it."""
        from studyhub.store import lifecycle
        from studyhub.store.db import open_store, resolve_url
        from studyhub.store.studies import get_study

        if secrets is not None and not secrets.is_file():
            raise InputError(
                f"--secrets {str(secrets)!r} is not a file; give the path of a secrets.toml "
                "(see docs/single-sign-on.md), or leave --secrets out"
            )
        url = resolve_url(state.db)
        store = open_store(url, create=False)
        try:
            with store.session() as s:
                found = get_study(s, study)
                lifecycle.require(found, "rate")
                study_id = found.id
        finally:
            store.dispose()
        env = {**os.environ, "STUDYHUB_DB": url, "STUDYHUB_STUDY": study_id}
        out.print(
            f"serving study {study_id} at http://{address}:{port} (Ctrl+C stops)", markup=False
        )
        rc = _run(streamlit_command(port, address, secrets), env)
        if rc:
            raise typer.Exit(rc)
