"""The report as a document model: sections of paragraphs, tables and figures.

:mod:`studyhub.evidence.report_sections` builds one :class:`Document`;
:mod:`studyhub.evidence.report_html` and :mod:`studyhub.evidence.report_pdf`
render that same document, so both formats carry the same sections, titles,
numbers and figures. Formatting of numbers lives here too (rounding only when
a report is written).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

__all__ = [
    "Block",
    "Document",
    "FigureBlock",
    "Heading",
    "Paragraph",
    "Preformatted",
    "Section",
    "Table",
    "cell",
    "frame_table",
    "interval",
    "key_values",
    "mapping_blocks",
    "not_applicable",
    "number",
    "p_value",
]


@dataclass(frozen=True)
class Paragraph:
    """A paragraph; ``style`` is ``""``, ``"note"`` (not applicable, caveats) or ``"verdict"``."""

    text: str
    style: str = ""


@dataclass(frozen=True)
class Heading:
    """A sub-heading inside a section."""

    text: str


@dataclass(frozen=True)
class Table:
    """A table of text cells; ``widths`` are relative column widths (PDF)."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    caption: str = ""
    widths: tuple[float, ...] | None = None
    css_class: str = ""


@dataclass(frozen=True)
class FigureBlock:
    """A matplotlib figure as PNG bytes, with its caption."""

    png: bytes
    caption: str


@dataclass(frozen=True)
class Preformatted:
    """Text shown as it is (e.g. a sampling report given as text)."""

    text: str


Block = Paragraph | Heading | Table | FigureBlock | Preformatted


@dataclass(frozen=True)
class Section:
    """A titled section; the same title appears in the HTML and in the PDF."""

    title: str
    blocks: tuple[Block, ...] = field(default_factory=tuple)
    anchor: str = ""


@dataclass(frozen=True)
class Document:
    """The whole report: a title, a line under it, and the sections in order."""

    title: str
    subtitle: str
    sections: tuple[Section, ...]

    @property
    def figures(self) -> list[FigureBlock]:
        """Every figure of the document, in order."""
        return [b for s in self.sections for b in s.blocks if isinstance(b, FigureBlock)]


def number(value: Any, digits: int = 3) -> str:
    """A number as the report prints it: ``digits`` decimals, infinities as ∞, missing as —."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(v):
        return "—"
    if math.isinf(v):
        return "∞" if v > 0 else "−∞"
    return f"{v:.{digits}f}"


def p_value(value: Any) -> str:
    """A p-value: four significant digits, ``< 0.0001`` below that, — when missing."""
    if value is None:
        return "—"
    v = float(value)
    if math.isnan(v):
        return "—"
    return "< 0.0001" if v < 1e-4 else f"{v:.4g}"


def interval(result: Mapping[str, Any]) -> str:
    """``[low, high)`` of an EndpointResult dict with its level, sidedness and adjustment."""
    low, high = result.get("ci_low"), result.get("ci_high")
    if low is None and high is None:
        return "—"
    open_ended = high is None or not math.isfinite(float(high))
    text = f"[{number(low)}, {'∞)' if open_ended else number(high) + ']'}"
    level = result.get("ci_level")
    words = []
    if level is not None:
        sides = result.get("ci_sides")
        side = {1: "one-sided", 2: "two-sided"}.get(int(sides), "") if sides else ""
        words.append(f"{100 * float(level):.4g}% {side}".strip())
    if result.get("ci_adjustment"):
        words.append(str(result["ci_adjustment"]))
    return f"{text}; {', '.join(words)}" if words else text


def cell(value: Any) -> str:
    """Any value as a table cell: numbers formatted, containers as compact JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, default=str, ensure_ascii=False, separators=(", ", ": "))
    return number(value)


def key_values(pairs: Sequence[tuple[str, Any]], caption: str = "") -> Table:
    """A two-column table of names and values."""
    return Table(
        header=("", ""),
        rows=tuple((k, cell(v)) for k, v in pairs),
        caption=caption,
        widths=(1.0, 2.6),
        css_class="kv",
    )


def not_applicable(why: str) -> Paragraph:
    return Paragraph(f"Not applicable to this study: {why}.", style="note")


def frame_table(frame: pd.DataFrame, caption: str = "") -> Table:
    return Table(
        header=tuple(map(str, frame.columns)),
        rows=tuple(tuple(cell(v) for v in row) for row in frame.itertuples(index=False)),
        caption=caption,
    )


def mapping_blocks(data: Mapping[str, Any], prefix: str) -> list[Block]:
    """A nested dict as tables: scalars as name/value rows, lists of dicts as tables."""
    scalars = [(k, v) for k, v in data.items() if not isinstance(v, Mapping | list)]
    blocks: list[Block] = [key_values(scalars)] if scalars else []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            blocks.append(Heading(name))
            blocks += mapping_blocks(value, f"{name} / ")
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            blocks += [Heading(name), frame_table(pd.DataFrame(value))]
        elif isinstance(value, list):
            blocks += [Heading(name), Paragraph(", ".join(map(cell, value)) or "(none)")]
    return blocks
