"""The README's examples run: every ```python block, and the commands it names exist."""

from __future__ import annotations

import re

from tests.paths import ROOT

README = (ROOT / "README.md").read_text()


def test_python_examples_run(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert blocks
    monkeypatch.chdir(ROOT)
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})


def test_every_command_the_readme_names_exists(cli) -> None:  # type: ignore[no-untyped-def]
    named = set(re.findall(r"^studyhub ([a-z]+)", README, flags=re.M))
    assert {"validate", "register", "sample", "explain"} <= named
    for command in sorted(named):
        assert cli(command, "--help").exit_code == 0, command


def test_quick_start_has_exactly_two_commands() -> None:
    block = README.split("<!-- quickstart -->", 1)[1].split("```", 2)[1]
    lines = [line for line in block.splitlines()[1:] if line.strip()]
    assert len(lines) == 2
    assert lines[1].endswith("pytest")
