"""Every malformed protocol or plan in malformed/ exits 2 naming the offending key.

Each file starts with two comment lines: ``# expect-key:`` (the key path, or where
the problem is) and ``# expect-message:`` (a phrase of the problem or its fix), and
may add ``# expect-value:`` (how the message quotes the value found).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.paths import DEMO_PROTOCOL

MALFORMED = sorted((Path(__file__).parent / "malformed").glob("*.yaml"))


def _expectations(path: Path) -> tuple[str, str, str]:
    head = path.read_text().splitlines()[:3]
    key = re.match(r"# expect-key: (.+)", head[0])
    message = re.match(r"# expect-message: (.+)", head[1])
    value = re.match(r"# expect-value: (.+)", head[2]) if len(head) > 2 else None
    if not (key and message):
        raise ValueError(f"{path} lacks its expect-key / expect-message header")
    return key.group(1).strip(), message.group(1).strip(), value.group(1) if value else ""


def test_corpus_is_large_enough() -> None:
    assert len(MALFORMED) >= 100
    assert sum(bool(_expectations(p)[2]) for p in MALFORMED) >= 50


@pytest.mark.parametrize("command", ["validate", "register"])
@pytest.mark.parametrize("path", MALFORMED, ids=[p.stem for p in MALFORMED])
def test_malformed_file_exits_2_with_located_message(  # type: ignore[no-untyped-def]
    path: Path, command: str, tmp_path: Path, cli
) -> None:
    """``validate`` and ``register`` both refuse it, naming the key and fix, writing nothing."""
    key, phrase, value = _expectations(path)
    if path.stem.startswith("plan_"):
        protocol = tmp_path / "protocol.yaml"
        protocol.write_text(
            DEMO_PROTOCOL.read_text().replace(
                "analysis_plan: ../analysis/inspection_demo.yaml", f"analysis_plan: {path}"
            )
        )
    else:
        protocol = path
    db = tmp_path / "never.db"
    result = cli("--db", f"sqlite:///{db}", command, str(protocol))
    assert result.exit_code == 2, result.output
    message = result.stderr
    assert message.startswith("error: ")
    assert str(path) in message, message
    assert key in message, message
    assert phrase in message, message
    assert value in message, message
    assert "Fix:" in message or "Fix" in message
    assert "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("never")) == []
