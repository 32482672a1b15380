"""The study report end to end: HTML in a real headless Chromium, the PDF's text, blinding.

The input is realistic (tests/evidence/report_fixtures.py): simulated ratings judged
by evaluate_criteria on a plan parsed from YAML, MRMC curves from studyhub.stats.mrmc,
flow and deviations as analyze records them.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import math
import os
import re
import shutil
from html import escape
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image
from pypdf import PdfReader

from studyhub.evidence.report import SECTION_TITLES, ReportFiles, ReportInput, write_report
from studyhub.evidence.report_sections import build_document
from tests.evidence.report_fixtures import ACCOUNTS, report_input

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None and os.environ.get("STUDYHUB_REQUIRE_BROWSER"):
    raise RuntimeError("STUDYHUB_REQUIRE_BROWSER is set but no chromium is installed")

DATA_URI = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')
NOT_APPLICABLE = "Not applicable to this study"


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> ReportInput:
    return report_input(tmp_path_factory.mktemp("plan"))


@pytest.fixture(scope="module")
def written(full: ReportInput, tmp_path_factory: pytest.TempPathFactory) -> ReportFiles:
    return write_report(full, tmp_path_factory.mktemp("report") / "report")


def _pdf_text(path: Path) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(path).pages)


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_fixture_has_every_verdict(full: ReportInput) -> None:
    verdicts = {r["endpoint"]: r["verdict"] for r in full.endpoint_results}
    assert set(verdicts.values()) == {"PASS", "FAIL", "NOT EVALUABLE"}, verdicts


@pytest.mark.browser
def test_html_renders_in_chromium_with_every_figure(
    written: ReportFiles, full: ReportInput, tmp_path: Path
) -> None:
    if CHROMIUM is None:
        pytest.skip("no chromium on this machine (.ci/run installs it)")
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    requests: list[str] = []
    shot = tmp_path / "report.png"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(written.html.as_uri(), wait_until="load")
            page.screenshot(path=str(shot), full_page=True)
            images = page.evaluate(
                "Array.from(document.images).map(i => ({src: i.src.slice(0, 22),"
                " complete: i.complete, w: i.naturalWidth, h: i.naturalHeight}))"
            )
            titles = page.eval_on_selector_all("h2", "els => els.map(e => e.textContent)")
            first_table = page.evaluate(
                "document.querySelector('table').closest('section').querySelector('h2').textContent"
            )
            rows = page.eval_on_selector_all(
                "section#s1 table tbody tr",
                "rows => rows.map(r => Array.from(r.cells).map(c => c.textContent))",
            )
        finally:
            browser.close()

    assert errors == []
    # self-contained: the page itself and nothing else (figures are data: URIs)
    assert [u for u in requests if not u.startswith("data:")] == [written.html.as_uri()]
    with Image.open(shot) as im:
        assert im.size[0] == 1200 and im.size[1] > 3000
    assert len(images) == len(build_document(full).figures) == 8
    for img in images:
        assert img["src"] == "data:image/png;base64,"
        assert img["complete"] and img["w"] > 0 and img["h"] > 0
    assert titles == list(SECTION_TITLES)
    assert first_table == "Success criteria"
    expected = full.endpoint_results
    assert [r[0] for r in rows] == [r["endpoint"] for r in expected]
    for row, result in zip(rows, expected, strict=True):
        assert row[2] == result["verdict"]
        assert row[6] == result["criterion"]  # verbatim
        assert row[1] == ("primary" if result["primary"] else "secondary")


def test_every_figure_is_an_embedded_png(written: ReportFiles, full: ReportInput) -> None:
    html = written.html.read_text(encoding="utf-8")
    blobs = DATA_URI.findall(html)
    assert len(blobs) == len(build_document(full).figures) == 8
    for blob in blobs:
        png = base64.b64decode(blob, validate=True)
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(io.BytesIO(png)) as im:
            assert im.size[0] > 100 and im.size[1] > 100
    # nothing to fetch: no external stylesheet, script, font or image
    assert not re.search(r'(?:src|href)="(?:https?:)?//', html)
    assert "<script" not in html and "@import" not in html and "url(" not in html


def test_criteria_table_comes_first_with_interval_level_and_overall_success(
    written: ReportFiles, full: ReportInput
) -> None:
    html = written.html.read_text(encoding="utf-8")
    first_h2 = html.index("<h2>")
    assert html[first_h2:].startswith("<h2>Success criteria</h2>")
    assert html.index("<table") > first_h2 and html.index("<table") < html.index(
        "<h2>", first_h2 + 1
    )
    ni = next(r for r in full.endpoint_results if r["endpoint"] == "gradcam_vs_ig")
    # the interval is one-sided, with its level and the Holm family adjustment stated
    assert (
        f"[{ni['ci_low']:.3f}, ∞); 97.5% one-sided, Bonferroni level over 2 primary tests" in html
    )
    assert "Overall: SUCCESS. Every primary endpoint passed." in html
    assert "Success rule: every primary endpoint must PASS" in html


def test_pdf_has_the_same_sections_and_verdicts(written: ReportFiles, full: ReportInput) -> None:
    reader = PdfReader(written.pdf)
    assert [o.title for o in reader.outline] == list(SECTION_TITLES)  # type: ignore[union-attr]
    text = _pdf_text(written.pdf)
    positions = [text.find(f"\n{t}\n") for t in SECTION_TITLES]
    assert all(p >= 0 for p in positions), dict(zip(SECTION_TITLES, positions, strict=True))
    assert positions == sorted(positions)
    flat = _flat(text)
    for result in full.endpoint_results:
        assert _flat(result["criterion"]) in flat
        assert result["endpoint"] in flat
    assert "NOT EVALUABLE" in flat and " FAIL " in flat and " PASS " in flat
    assert "Overall: SUCCESS. Every primary endpoint passed." in flat


def test_no_account_name_reaches_either_file(written: ReportFiles) -> None:
    html = written.html.read_text(encoding="utf-8")
    pdf = _pdf_text(written.pdf)
    for text in (html, pdf):
        assert "rater-3" in text  # raters do appear, as pseudonyms (the deviations)
        for account in ACCOUNTS:
            assert account not in text
            assert account.split(".")[0] not in text.lower()


def test_optional_parts_say_not_applicable(full: ReportInput, tmp_path: Path) -> None:
    criteria = dict(full.results["criteria"])
    # raw EndpointResult values as evaluate_criteria gives them (ci_high infinite)
    criteria["results"] = [
        {**r, "ci_high": math.inf} for r in criteria["results"] if r["statistic"] == "mixed_model"
    ]
    results = {
        "criteria": criteria,
        "deviations": [],
        "flow": full.results["flow"],
        "free_text": {},
    }
    likert = full.answers[full.answers["item_type"] == "likert"]
    bare = ReportInput(study=full.study, results=results, answers=likert)
    files = write_report(bare, tmp_path / "bare")
    doc = build_document(bare)
    sections = {s.title: s for s in doc.sections}
    for title in (
        "Agreement",
        "Human-versus-metric correlation",
        "MRMC reader ROC analysis",
        "Calibration",
        "Sampling report",
        "Example stimuli",
        "Free text",
        "Cue marks",
        "Environment",
    ):
        (block,) = sections[title].blocks
        assert getattr(block, "text", "").startswith(NOT_APPLICABLE), title
    html = files.html.read_text(encoding="utf-8")
    assert html.count(NOT_APPLICABLE) == 9
    assert "No deviation from the plan was recorded." in html
    assert "The protocol and plan were not amended after registration." in html
    assert len(DATA_URI.findall(html)) == 3  # flow, forest, one Likert item
    assert _flat(_pdf_text(files.pdf)).count(NOT_APPLICABLE) == 9
    checklist_rows = _flat(_pdf_text(files.pdf))
    assert "not applicable: the plan has no reader-diagnosis (MRMC) endpoint" in checklist_rows


def test_rewriting_replaces_both_files_whole(full: ReportInput, tmp_path: Path) -> None:
    out = tmp_path / "r"
    first = write_report(full, out)
    old = first.html.read_bytes()
    changed = dataclasses.replace(full, study=dataclasses.replace(full.study, title="Second title"))
    second = write_report(changed, out)
    assert second == first
    assert second.html.read_bytes() != old
    assert "Second title" in second.html.read_text(encoding="utf-8")
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.pdf"]


def test_free_text_is_counted_per_arm_and_listed(written: ReportFiles, full: ReportInput) -> None:
    html = written.html.read_text(encoding="utf-8")
    texts = full.answers[full.answers["item_type"] == "free_text"]
    for label in pd.unique(texts["label"]):
        assert f"<td>{escape(label)}</td>" in html
    counts = full.results["free_text"]["comment"]
    for arm, n in counts.items():
        assert f"<td>comment</td><td>{arm}</td><td>{n}</td>" in html
