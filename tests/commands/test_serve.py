"""``studyhub serve``: refuses unless the study is in rating, then runs streamlit with the study."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

import pytest

from studyhub.commands import serve
from tests.rating.conftest import STUDY, RatingStudy


@pytest.fixture
def launched(monkeypatch: pytest.MonkeyPatch) -> list[tuple[list[str], dict[str, str]]]:
    """Capture the server command instead of starting it; the fake server exits with 3."""
    calls: list[tuple[list[str], dict[str, str]]] = []

    def fake_run(cmd: list[str], env: dict[str, str]) -> int:
        calls.append((cmd, env))
        return 3

    monkeypatch.setattr(serve, "_run", fake_run)
    return calls


def test_serve_runs_streamlit_with_the_study_and_forwards_its_exit_code(
    cli: Any, make_study: Callable[..., RatingStudy], launched: list[Any]
) -> None:
    rs = make_study()
    result = cli("--db", rs.store.url, "serve", "--port", "8600", "--address", "0.0.0.0")
    assert result.exit_code == 3, result.output
    assert f"serving study {STUDY} at http://0.0.0.0:8600" in result.stdout
    [(cmd, env)] = launched
    assert cmd[:4] == [sys.executable, "-m", "streamlit", "run"]
    assert cmd[4] == str(serve.APP_SCRIPT) and serve.APP_SCRIPT.is_file()
    opts = dict(zip(cmd[5::2], cmd[6::2], strict=True))
    assert opts == {
        "--server.port": "8600",
        "--server.address": "0.0.0.0",
        "--server.headless": "true",
        "--browser.gatherUsageStats": "false",
        "--client.toolbarMode": "minimal",  # raters see no "Deploy" or developer menu
    }
    assert env["STUDYHUB_DB"] == rs.store.url and env["STUDYHUB_STUDY"] == STUDY


def test_serve_refuses_a_study_that_is_not_in_rating(
    cli: Any, make_study: Callable[..., RatingStudy], launched: list[Any]
) -> None:
    rs = make_study(state="enrolling")
    result = cli("--db", rs.store.url, "serve", "--study", STUDY)
    assert result.exit_code == 2
    assert f"cannot rate: study {STUDY!r} is enrolling" in result.stderr
    assert "studyhub assign" in result.stderr
    assert not launched


def test_serve_refuses_an_unknown_study_and_a_bad_port(
    cli: Any, make_study: Callable[..., RatingStudy], launched: list[Any]
) -> None:
    rs = make_study()
    result = cli("--db", rs.store.url, "serve", "--study", "nope")
    assert result.exit_code == 2 and "no study 'nope' in this database" in result.stderr
    result = cli("--db", rs.store.url, "serve", "--port", "0")
    assert result.exit_code == 2 and "--port" in result.output
    assert not launched


def test_run_returns_the_child_exit_code() -> None:
    code = "import sys; sys.exit(5)"
    assert serve._run([sys.executable, "-c", code], {}) == 5


def test_sigterm_is_passed_on_to_the_server() -> None:
    previous = signal.getsignal(signal.SIGTERM)
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    try:
        rc = serve._run([sys.executable, "-c", "import time; time.sleep(30)"], {})
    finally:
        timer.cancel()
    assert rc == -signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is previous
