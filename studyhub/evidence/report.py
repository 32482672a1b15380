"""The study report: one self-contained HTML page and a PDF of the same content.

:func:`write_report` checks the input (:func:`~studyhub.evidence.report_input.check_input`),
builds the document once (:func:`~studyhub.evidence.report_sections.build_document`:
criteria first, then flow, arm comparisons, distributions, agreement,
correlations, MRMC, calibration, sampling, example stimuli, deviations and
amendments, free text, cue marks, reporting checklists, environment) and
renders it twice, to HTML (figures inline as base64 PNG) and to PDF (fpdf2).
Bad input raises before any file is written.

Examples
--------
>>> files = write_report(inp, Path("package/report"))  # doctest: +SKIP
>>> files.html.name, files.pdf.name  # doctest: +SKIP
('report.html', 'report.pdf')
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from studyhub.errors import InputError
from studyhub.evidence.report_html import render_html
from studyhub.evidence.report_input import (
    AmendmentRecord,
    CalibrationData,
    MRMCData,
    ReportInput,
    StudyInfo,
    check_input,
    roc_points,
)
from studyhub.evidence.report_pdf import render_pdf
from studyhub.evidence.report_sections import SECTION_TITLES, build_document

__all__ = [
    "SECTION_TITLES",
    "AmendmentRecord",
    "CalibrationData",
    "MRMCData",
    "ReportFiles",
    "ReportInput",
    "StudyInfo",
    "roc_points",
    "write_report",
]

HTML_NAME = "report.html"
PDF_NAME = "report.pdf"


@dataclass(frozen=True)
class ReportFiles:
    """The two files :func:`write_report` wrote."""

    html: Path
    pdf: Path


def write_report(inp: ReportInput, out_dir: Path) -> ReportFiles:
    """Write ``report.html`` and ``report.pdf`` of ``inp`` into ``out_dir``.

    Parameters
    ----------
    inp
        Everything the report shows (after unblinding).
    out_dir
        Folder to write into; created if missing. Existing report files are
        replaced whole (each is written to a temporary file and renamed).

    Returns
    -------
    ReportFiles
        The paths of the HTML page and the PDF.

    Raises
    ------
    DataError
        When the input cannot be reported honestly (a missing column, a rater
        that is not a pseudonym, stimuli before unblinding); nothing is written.
    InputError
        When ``out_dir`` exists and is not a folder.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(
            f"the report folder {str(out_dir)!r} is a file; pass a folder "
            "(it is created if missing)"
        )
    check_input(inp)
    doc = build_document(inp)
    html = render_html(doc).encode("utf-8")
    pdf = render_pdf(doc)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = ReportFiles(html=out_dir / HTML_NAME, pdf=out_dir / PDF_NAME)
    _replace(files.html, html)
    _replace(files.pdf, pdf)
    return files


def _replace(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
