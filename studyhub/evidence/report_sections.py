"""The report's sections, in order, built from a :class:`ReportInput`.

The success criteria come first. Every optional part either shows its data or
says in one sentence that it does not apply to this study. Raters appear only as
their pseudonyms (``rater-<id>``, checked by :func:`check_input`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from studyhub.evidence import figures
from studyhub.evidence import report_records as records
from studyhub.evidence.report_document import (
    Block,
    Document,
    FigureBlock,
    Heading,
    Paragraph,
    Section,
    Table,
    cell,
    frame_table,
    interval,
    key_values,
    not_applicable,
    number,
    p_value,
)
from studyhub.evidence.report_input import ReportInput

__all__ = ["SECTION_TITLES", "build_document"]

#: The section titles, in the order the report shows them (HTML and PDF alike).
SECTION_TITLES = (
    "Success criteria",
    "Study and registration",
    "Flow of cases and raters",
    "Arm comparisons",
    "Rating distributions",
    "Agreement",
    "Human-versus-metric correlation",
    "MRMC reader ROC analysis",
    "Calibration",
    "Sampling report",
    "Example stimuli",
    "Deviations and amendments",
    "Free text",
    "Cue marks",
    "Reporting checklists",
    "Environment",
)


def _evaluable(r: Mapping[str, Any]) -> bool:
    v = r.get("estimate")
    return v is not None and math.isfinite(float(v))


def build_document(inp: ReportInput) -> Document:
    """Every section of the report for ``inp``, in :data:`SECTION_TITLES` order."""
    builders = (
        _criteria,
        _study,
        _flow,
        _comparisons,
        _distributions,
        _agreement,
        _correlation,
        _mrmc,
        _calibration,
        records.sampling_section,
        records.montage_section,
        records.deviations_section,
        records.free_text_section,
        records.marks_section,
        records.checklists_section,
        records.environment_section,
    )
    sections = tuple(
        Section(title, tuple(build(inp)), anchor=f"s{i + 1}")
        for i, (title, build) in enumerate(zip(SECTION_TITLES, builders, strict=True))
    )
    s = inp.study
    return Document(
        title=f"Study report: {s.title}",
        subtitle=f"study {s.id} · {s.design} · registration {s.registration_hash[:16]}…",
        sections=sections,
    )


def _criteria(inp: ReportInput) -> list[Block]:
    crit = inp.results["criteria"]
    results = inp.endpoint_results
    rows = tuple(
        (
            str(r["endpoint"]),
            "primary" if r.get("primary") else "secondary",
            str(r["verdict"]),
            number(r.get("estimate")),
            interval(r),
            p_value(r.get("p_adjusted")),
            str(r.get("criterion", "")),
            str(r.get("reason", "")),
        )
        for r in results
    )
    family = ", ".join(crit.get("family", [])) or "no endpoint"
    table = Table(
        header=(
            "Endpoint",
            "Role",
            "Verdict",
            "Estimate",
            "Interval (level, adjustment)",
            "Adjusted p",
            "Success criterion (verbatim)",
            "Reason",
        ),
        rows=rows,
        caption=f"Plan {crit.get('plan_id', '')}: alpha {number(crit.get('alpha'))}, "
        f"confidence {number(crit.get('confidence'))}, multiplicity "
        f"{crit.get('multiplicity', '')} over {family}.",
        widths=(1.5, 0.9, 1.2, 0.8, 2.2, 0.9, 2.6, 2.2),
        css_class="criteria",
    )
    success = bool(crit.get("success"))
    not_passed = [
        f"{r['endpoint']} ({r['verdict']})"
        for r in results
        if r.get("primary") and r.get("verdict") != "PASS"
    ]
    overall = (
        "Overall: SUCCESS. Every primary endpoint passed."
        if success
        else "Overall: NOT SUCCESSFUL. Primary endpoints that did not pass: "
        + (", ".join(not_passed) or "none recorded")
        + "."
    )
    return [
        table,
        Paragraph(overall, style="verdict"),
        Paragraph(f"Success rule: {crit.get('success_rule', '')}"),
    ]


def _study(inp: ReportInput) -> list[Block]:
    s, res = inp.study, inp.results
    pairs: list[tuple[str, Any]] = [
        ("study", s.id),
        ("title", s.title),
        ("design", s.design),
        ("protocol", s.protocol_id),
        ("analysis plan", s.plan_id),
        ("registered at (UTC)", s.registered_at),
        ("registration hash", s.registration_hash),
        ("plan hash", s.plan_hash),
    ]
    if s.protocol_hash:
        pairs.append(("protocol hash", s.protocol_hash))
    for key, label in (
        ("data_digest", "data digest (answers CSV)"),
        ("seed", "seed"),
        ("unblinded_at", "unblinded at (UTC)"),
        ("unblinded_by", "unblinded by"),
        ("reason", "reason for unblinding"),
    ):
        if res.get(key) not in (None, ""):
            pairs.append((label, res[key]))
    return [key_values(pairs)]


def _flow(inp: ReportInput) -> list[Block]:
    flow = inp.results.get("flow") or {}
    if not flow:
        return [not_applicable("the analysis recorded no flow of cases and raters")]
    rows = tuple(
        (who, step, cell(counts.get(step, "—")))
        for who, steps in (
            ("cases", figures.CASE_STEPS),
            ("raters", (*figures.RATER_STEPS[:3], "excluded", "analysed")),
        )
        for counts in [flow.get(who, {})]
        for step in steps
    )
    return [
        FigureBlock(
            figures.flow_figure(flow),
            "CONSORT-style flow of cases (pool to analysed) and raters (invited to analysed).",
        ),
        Table(header=("", "step", "n"), rows=rows, widths=(1, 1.5, 1)),
    ]


def _comparisons(inp: ReportInput) -> list[Block]:
    comp = [r for r in inp.endpoint_results if r.get("comparison") and _evaluable(r)]
    if not comp:
        return [not_applicable("the plan has no arm comparison with an estimate")]
    rows = tuple(
        (
            str(r["endpoint"]),
            str(r["comparison"]),
            str(r["hypothesis"]),
            number(r.get("estimate")),
            interval(r),
            str(r.get("population", "")),
        )
        for r in comp
    )
    return [
        FigureBlock(
            figures.forest_figure(comp),
            "Arm differences (points) with one-sided lower confidence bounds (arrows); "
            "dashed lines mark non-inferiority margins.",
        ),
        Table(
            header=("Endpoint", "Comparison", "Hypothesis", "Estimate", "Interval", "Population"),
            rows=rows,
            widths=(1.2, 1.2, 1.4, 0.8, 2.0, 2.2),
        ),
    ]


def _distributions(inp: ReportInput) -> list[Block]:
    a = inp.answers
    likert = sorted(map(str, a.loc[a["item_type"].astype(str) == "likert", "item"].unique()))
    if not likert:
        return [not_applicable("the instrument has no Likert item")]
    blocks: list[Block] = []
    for item in likert:
        sub = a[a["item"].astype(str) == item].assign(
            value=lambda d: pd.to_numeric(d["value"], errors="coerce")
        )
        stats = sub.groupby(sub["arm"].astype(str))["value"].agg(["count", "mean", "median", "std"])
        blocks += [
            Heading(f"Item {item}"),
            FigureBlock(
                figures.distribution_figure(a, item), f"Share of each {item} rating, per arm."
            ),
            Table(
                header=("Arm", "n", "mean", "median", "SD"),
                rows=tuple(
                    (
                        str(arm),
                        str(int(r["count"])),
                        number(r["mean"], 2),
                        number(r["median"], 1),
                        number(r["std"], 2),
                    )
                    for arm, r in stats.iterrows()
                ),
            ),
        ]
    return blocks


def _kind(r: Mapping[str, Any], word: str) -> bool:
    return str(r.get("hypothesis", "")).startswith(word)


def _estimate_rows(results: list[dict[str, Any]]) -> tuple[tuple[str, ...], ...]:
    return tuple(
        (
            str(r["endpoint"]),
            str(r["statistic"]),
            str(r["verdict"]),
            number(r.get("estimate")),
            interval(r),
            str(r["hypothesis"]),
            str(r.get("population", "")),
        )
        for r in results
    )


_ESTIMATE_HEADER = (
    "Endpoint",
    "Statistic",
    "Verdict",
    "Estimate",
    "Interval",
    "Hypothesis",
    "Population",
)


def _agreement(inp: ReportInput) -> list[Block]:
    agree = [r for r in inp.endpoint_results if _kind(r, "agreement")]
    if not agree:
        return [not_applicable("the plan has no agreement endpoint")]
    shown = [r for r in agree if _evaluable(r)]
    blocks: list[Block] = []
    if shown:
        blocks.append(
            FigureBlock(
                figures.agreement_figure(shown),
                "Agreement estimates with one-sided lower bounds; dashed: the plan's threshold.",
            )
        )
    blocks.append(Table(header=_ESTIMATE_HEADER, rows=_estimate_rows(agree)))
    return blocks


def _correlation(inp: ReportInput) -> list[Block]:
    corr = [r for r in inp.endpoint_results if _kind(r, "correlation")]
    data = inp.metric_correlation
    if not corr and (data is None or data.empty):
        return [not_applicable("the plan correlates no rating with a quantitative metric")]
    blocks: list[Block] = []
    if data is not None and not data.empty:
        blocks.append(
            FigureBlock(
                figures.correlation_figure(data),
                "Mean rating of each stimulus against its quantitative metric, by arm.",
            )
        )
    if corr:
        blocks.append(Table(header=_ESTIMATE_HEADER, rows=_estimate_rows(corr)))
    return blocks


def _mrmc(inp: ReportInput) -> list[Block]:
    ends = [r for r in inp.endpoint_results if r.get("statistic") == "mrmc"]
    if inp.mrmc is None:
        return [not_applicable("the plan has no reader-diagnosis (MRMC) endpoint")]
    blocks: list[Block] = [
        FigureBlock(
            figures.roc_figure(inp.mrmc.roc), "Empirical ROC curve of each reader, per arm."
        ),
        Heading("Obuchowski-Rockette analysis"),
        frame_table(inp.mrmc.or_table),
    ]
    if ends:
        blocks.append(Table(header=_ESTIMATE_HEADER, rows=_estimate_rows(ends)))
    return blocks


def _calibration(inp: ReportInput) -> list[Block]:
    cal = inp.calibration
    if cal is None:
        return [not_applicable("no calibration of the model was recorded")]
    return [
        FigureBlock(
            figures.reliability_figure(cal.bins, cal.ece_before, cal.ece_after),
            "Reliability diagram of the calibrated probabilities (marker area: cases in the bin).",
        ),
        key_values(
            [
                ("ECE before temperature scaling", number(cal.ece_before)),
                ("ECE after temperature scaling", number(cal.ece_after)),
                ("cases", int(cal.bins["count"].sum())),
            ]
        ),
    ]
