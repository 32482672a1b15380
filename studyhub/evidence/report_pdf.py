"""The report as a PDF of the same document, written with fpdf2 (pure Python, no browser).

Text is set in DejaVu Sans, the TrueType font matplotlib ships, so the PDF
carries every character the HTML does (≥, ∞, −, accents) and its text can be
extracted. Each section starts a PDF bookmark with the section's title.
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib
from fpdf import FPDF
from fpdf.enums import XPos, YPos
from fpdf.fonts import FontFace
from PIL import Image

from studyhub.evidence.report_document import (
    Block,
    Document,
    FigureBlock,
    Heading,
    Paragraph,
    Preformatted,
    Table,
)

__all__ = ["render_pdf"]

_FONT = "DejaVu"
_TTF = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
_HEADINGS = FontFace(emphasis="BOLD", fill_color=(238, 243, 248))
_VERDICT_FILL = {"PASS": (227, 241, 230), "FAIL": (248, 225, 225), "NOT EVALUABLE": (238, 238, 238)}


class _Report(FPDF):
    def __init__(self, doc: Document) -> None:
        super().__init__(orientation="L", unit="mm", format="A4")
        self.doc_title = doc.title
        self.add_font(_FONT, "", str(_TTF / "DejaVuSans.ttf"))
        self.add_font(_FONT, "B", str(_TTF / "DejaVuSans-Bold.ttf"))
        self.add_font(_FONT, "I", str(_TTF / "DejaVuSans-Oblique.ttf"))
        self.set_auto_page_break(auto=True, margin=15)
        self.set_title(doc.title)
        self.set_creator("studyhub")

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(_FONT, "", 7)
        self.set_text_color(120, 120, 120)
        self.cell(0, 5, f"{self.doc_title} · page {self.page_no()}", align="C")
        self.set_text_color(0, 0, 0)


def render_pdf(doc: Document) -> bytes:
    """The whole document as PDF bytes."""
    pdf = _Report(doc)
    pdf.add_page()
    pdf.set_font(_FONT, "B", 16)
    pdf.multi_cell(0, 8, doc.title, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(_FONT, "", 9)
    pdf.set_text_color(85, 85, 85)
    pdf.multi_cell(0, 5, doc.subtitle, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_text_color(0, 0, 0)
    for section in doc.sections:
        if pdf.will_page_break(30):
            pdf.add_page()
        pdf.ln(4)
        pdf.start_section(section.title, level=0)
        pdf.set_font(_FONT, "B", 13)
        pdf.set_text_color(52, 87, 122)
        pdf.multi_cell(0, 7, section.title, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_draw_color(52, 87, 122)
        pdf.line(pdf.l_margin, pdf.get_y(), pdf.w - pdf.r_margin, pdf.get_y())
        pdf.set_text_color(0, 0, 0)
        pdf.ln(2)
        for block in section.blocks:
            _block(pdf, block)
    return bytes(pdf.output())


def _block(pdf: FPDF, b: Block) -> None:
    if isinstance(b, Paragraph):
        style = {"note": "I", "verdict": "B"}.get(b.style, "")
        pdf.set_font(_FONT, style, 9)
        pdf.multi_cell(0, 4.6, b.text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.ln(1.5)
    elif isinstance(b, Heading):
        if pdf.will_page_break(20):
            pdf.add_page()
        pdf.set_font(_FONT, "B", 10)
        pdf.multi_cell(0, 5.5, b.text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.ln(0.5)
    elif isinstance(b, Preformatted):
        pdf.set_font(_FONT, "", 7.5)
        pdf.multi_cell(0, 3.8, b.text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.ln(1.5)
    elif isinstance(b, FigureBlock):
        _figure(pdf, b)
    else:
        _table(pdf, b)


def _figure(pdf: FPDF, b: FigureBlock) -> None:
    with Image.open(io.BytesIO(b.png)) as im:
        px_w, px_h = im.size
    width = min(pdf.epw, px_w * 25.4 / 110)  # the figures' dpi: natural size, at most the page
    height = width * px_h / px_w
    max_h = pdf.eph - 20
    if height > max_h:
        width, height = width * max_h / height, max_h
    if pdf.will_page_break(height + 8):
        pdf.add_page()
    pdf.image(io.BytesIO(b.png), x=pdf.l_margin + (pdf.epw - width) / 2, w=width, h=height)
    pdf.set_font(_FONT, "I", 8)
    pdf.set_text_color(85, 85, 85)
    pdf.multi_cell(0, 4, b.caption, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_text_color(0, 0, 0)
    pdf.ln(2)


def _table(pdf: FPDF, t: Table) -> None:
    if t.caption:
        pdf.set_font(_FONT, "I", 8)
        pdf.multi_cell(0, 4, t.caption, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    n = len(t.header)
    size = 7.0 if n > 5 else 8.0
    pdf.set_font(_FONT, "", size)
    has_header = any(t.header)
    widths = t.widths if t.widths is not None and len(t.widths) == n else tuple([1.0] * n)
    with pdf.table(
        col_widths=widths,
        first_row_as_headings=has_header,
        line_height=size * 0.5,
        text_align="LEFT",
        headings_style=_HEADINGS,
    ) as table:
        if has_header:
            head = table.row()
            for h in t.header:
                head.cell(h)
        for row in t.rows:
            r = table.row()
            for value in row:
                fill = _VERDICT_FILL.get(value)
                if fill is not None:
                    r.cell(value, style=FontFace(emphasis="BOLD", fill_color=fill))
                else:
                    r.cell(value)
    pdf.ln(2)
