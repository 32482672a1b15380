"""Tests of studyhub/commands/cases.py: the progress bar of sample and enroll."""

from __future__ import annotations

import io

from rich.console import Console

from studyhub.commands.cases import progress_bar


def test_progress_bar_draws_on_a_terminal_only() -> None:
    terminal = io.StringIO()
    with progress_bar(Console(file=terminal, force_terminal=True, width=100)) as tick:
        assert tick is not None
        tick("reading manifest", 512, 1024)
        tick("checking image files [1/2] :warning:", 3, 3)
    drawn = terminal.getvalue()
    assert "reading manifest" in drawn
    assert "checking image files [1/2] :warning:" in drawn  # stage names print verbatim
    pipe = io.StringIO()
    with progress_bar(Console(file=pipe, force_terminal=False)) as quiet:
        assert quiet is None
    assert pipe.getvalue() == ""


def test_progress_bar_with_a_unit_shows_counts_and_rate() -> None:
    terminal = io.StringIO()
    with progress_bar(
        Console(file=terminal, force_terminal=True, width=140), unit="stimuli"
    ) as tick:
        assert tick is not None
        tick("explain ig", 0, 16)
        tick("explain ig", 8, 16)
        tick("explain ig", 16, 16)
    drawn = terminal.getvalue()
    assert "explain ig" in drawn
    assert "16/16" in drawn
    assert "stimuli/s" in drawn
