"""The report as one self-contained HTML page: inline CSS, figures as base64 PNG data URIs.

Nothing is fetched: no external stylesheet, script, font or image, so the page
reads the same offline, from a zip, years later. Every text is escaped.
"""

from __future__ import annotations

import base64
from html import escape

from studyhub.evidence.report_document import (
    Block,
    Document,
    FigureBlock,
    Heading,
    Paragraph,
    Preformatted,
    Table,
)

__all__ = ["render_html"]

_CSS = """
body { font-family: "DejaVu Sans", "Helvetica Neue", Arial, sans-serif; color: #222;
       max-width: 1100px; margin: 2em auto; padding: 0 1em; line-height: 1.4; font-size: 14px; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
.subtitle { color: #555; margin-top: 0; }
h2 { border-bottom: 2px solid #34577a; padding-bottom: 0.2em; margin-top: 2em; color: #34577a; }
h3 { margin-bottom: 0.3em; }
table { border-collapse: collapse; margin: 0.6em 0 1em; width: 100%; font-size: 12.5px; }
th, td { border: 1px solid #c8d2dc; padding: 4px 6px; vertical-align: top; text-align: left; }
th { background: #eef3f8; }
table.kv td:first-child { width: 28%; color: #444; font-weight: 600; }
table.kv thead { display: none; }
caption { caption-side: top; text-align: left; color: #555; padding-bottom: 0.3em; }
td.PASS { background: #e3f1e6; color: #1b7837; font-weight: 700; }
td.FAIL { background: #f8e1e1; color: #b2182b; font-weight: 700; }
td.NOT-EVALUABLE { background: #eeeeee; color: #555; font-weight: 700; }
p.note { color: #555; font-style: italic; }
p.verdict { font-weight: 700; font-size: 1.1em; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #e0e0e0; }
figcaption { color: #555; font-size: 12.5px; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; }
nav ol { columns: 2; }
"""


def render_html(doc: Document) -> str:
    """The whole document as an HTML5 page (a string)."""
    toc = "".join(f'<li><a href="#{s.anchor}">{escape(s.title)}</a></li>' for s in doc.sections)
    body = "\n".join(
        f'<section id="{s.anchor}">\n<h2>{escape(s.title)}</h2>\n'
        + "\n".join(_block(b) for b in s.blocks)
        + "\n</section>"
        for s in doc.sections
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(doc.title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"<h1>{escape(doc.title)}</h1>\n"
        f'<p class="subtitle">{escape(doc.subtitle)}</p>\n'
        f"<nav><ol>{toc}</ol></nav>\n{body}\n</body>\n</html>\n"
    )


def _block(b: Block) -> str:
    if isinstance(b, Paragraph):
        cls = f' class="{b.style}"' if b.style else ""
        return f"<p{cls}>{escape(b.text)}</p>"
    if isinstance(b, Heading):
        return f"<h3>{escape(b.text)}</h3>"
    if isinstance(b, Preformatted):
        return f"<pre>{escape(b.text)}</pre>"
    if isinstance(b, FigureBlock):
        data = base64.b64encode(b.png).decode("ascii")
        return (
            f'<figure><img src="data:image/png;base64,{data}" alt="{escape(b.caption)}">'
            f"<figcaption>{escape(b.caption)}</figcaption></figure>"
        )
    return _table(b)


def _table(t: Table) -> str:
    cls = f' class="{t.css_class}"' if t.css_class else ""
    caption = f"<caption>{escape(t.caption)}</caption>" if t.caption else ""
    head = "".join(f"<th>{escape(h)}</th>" for h in t.header)
    rows = "".join("<tr>" + "".join(_td(v) for v in row) + "</tr>" for row in t.rows)
    return f"<table{cls}>{caption}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _td(value: str) -> str:
    if value in ("PASS", "FAIL", "NOT EVALUABLE"):
        return f'<td class="{value.replace(" ", "-")}">{escape(value)}</td>'
    return f"<td>{escape(value)}</td>"
