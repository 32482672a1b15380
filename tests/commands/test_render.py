"""Tests of studyhub/commands/render.py: text prints verbatim, tables too."""

from __future__ import annotations

import io
from dataclasses import dataclass

import pandas as pd
from rich.console import Console

from studyhub.commands.render import plain_console, print_result, texts

TRICKY = "study:warning:v2.yaml [bold]x[/] [/] :smile: [red]"


def test_plain_console_prints_markup_and_emoji_codes_verbatim() -> None:
    buffer = io.StringIO()
    plain_console(file=buffer, width=200).print(TRICKY)
    assert buffer.getvalue() == TRICKY + "\n"
    # a default rich console would have eaten them: the check above could fail
    default = io.StringIO()
    Console(file=default, width=200).print("study:warning:v2.yaml [bold]x[/bold]")
    assert default.getvalue() != "study:warning:v2.yaml [bold]x[/bold]\n"


@dataclass
class _Result:
    note: str
    table: pd.DataFrame


def test_result_tables_print_user_values_verbatim_on_any_console() -> None:
    result = _Result(note=":warning: [bold]n[/]", table=pd.DataFrame({"[b]rater[/]": [TRICKY]}))
    for console_factory in (plain_console, Console):  # even a console with markup on
        buffer = io.StringIO()
        print_result(result, console_factory(file=buffer, width=300), title="[red]T[/]")
        text = buffer.getvalue()
        assert ":warning: [bold]n[/]" in text
        assert TRICKY in text and "[b]rater[/]" in text and "[red]T[/]" in text


def test_texts_are_verbatim_cells() -> None:
    cells = texts("[bold]a[/]", 3, None)
    assert [c.plain for c in cells] == ["[bold]a[/]", "3", "None"]
