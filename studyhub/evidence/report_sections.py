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
from studyhub.evidence.checklist import GUIDELINES, checklist
from studyhub.evidence.report_document import (
    Block,
    Document,
    FigureBlock,
    Heading,
    Paragraph,
    Preformatted,
    Section,
    Table,
    cell,
    interval,
    key_values,
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


def _na(why: str) -> Paragraph:
    return Paragraph(f"Not applicable to this study: {why}.", style="note")


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
        _sampling,
        _montage,
        _deviations,
        _free_text,
        _marks,
        _checklists,
        _environment,
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
        return [_na("the analysis recorded no flow of cases and raters")]
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
        return [_na("the plan has no arm comparison with an estimate")]
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
        return [_na("the instrument has no Likert item")]
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
        return [_na("the plan has no agreement endpoint")]
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
        return [_na("the plan correlates no rating with a quantitative metric")]
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


def _frame_table(frame: pd.DataFrame, caption: str = "") -> Table:
    return Table(
        header=tuple(map(str, frame.columns)),
        rows=tuple(tuple(cell(v) for v in row) for row in frame.itertuples(index=False)),
        caption=caption,
    )


def _mrmc(inp: ReportInput) -> list[Block]:
    ends = [r for r in inp.endpoint_results if r.get("statistic") == "mrmc"]
    if inp.mrmc is None:
        return [_na("the plan has no reader-diagnosis (MRMC) endpoint")]
    blocks: list[Block] = [
        FigureBlock(
            figures.roc_figure(inp.mrmc.roc), "Empirical ROC curve of each reader, per arm."
        ),
        Heading("Obuchowski-Rockette analysis"),
        _frame_table(inp.mrmc.or_table),
    ]
    if ends:
        blocks.append(Table(header=_ESTIMATE_HEADER, rows=_estimate_rows(ends)))
    return blocks


def _calibration(inp: ReportInput) -> list[Block]:
    cal = inp.calibration
    if cal is None:
        return [_na("no calibration of the model was recorded")]
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


def _sampling(inp: ReportInput) -> list[Block]:
    rep = inp.sampling_report
    if rep is None:
        return [_na("no sampling report was recorded (cases were not drawn by a sampling plan)")]
    if isinstance(rep, str):
        return [Preformatted(rep)]
    return _mapping_blocks(rep, "")


def _mapping_blocks(data: Mapping[str, Any], prefix: str) -> list[Block]:
    """A nested dict as tables: scalars as name/value rows, lists of dicts as tables."""
    scalars = [(k, v) for k, v in data.items() if not isinstance(v, Mapping | list)]
    blocks: list[Block] = [key_values(scalars)] if scalars else []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            blocks.append(Heading(name))
            blocks += _mapping_blocks(value, f"{name} / ")
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            blocks += [Heading(name), _frame_table(pd.DataFrame(value))]
        elif isinstance(value, list):
            blocks += [Heading(name), Paragraph(", ".join(map(cell, value)) or "(none)")]
    return blocks


def _montage(inp: ReportInput) -> list[Block]:
    if not inp.montage:
        return [_na("no example stimuli were selected")]
    arms = sorted({str(a) for a, _ in inp.montage})
    return [
        FigureBlock(
            figures.montage_figure(inp.montage),
            f"Example stimuli, one row per arm ({', '.join(arms)}), shown after unblinding.",
        )
    ]


def _deviations(inp: ReportInput) -> list[Block]:
    devs = inp.results.get("deviations") or []
    blocks: list[Block] = [Heading("Deviations")]
    if devs:
        blocks.append(
            Table(
                header=("Kind", "Rater", "Case", "Detail"),
                rows=tuple(
                    (
                        str(d.get("kind", "")),
                        str(d.get("rater") or "—"),
                        str(d.get("case") or "—"),
                        str(d.get("detail", "")),
                    )
                    for d in devs
                ),
                widths=(1.2, 0.9, 0.9, 3.5),
            )
        )
    else:
        blocks.append(Paragraph("No deviation from the plan was recorded."))
    blocks.append(Heading("Amendments"))
    if inp.amendments:
        blocks.append(
            Table(
                header=("No.", "Reason", "Old hash", "New hash", "Created (UTC)"),
                rows=tuple(
                    (
                        str(a.number),
                        a.reason,
                        a.old_hash[:16] + "…",
                        a.new_hash[:16] + "…",
                        a.created_at,
                    )
                    for a in inp.amendments
                ),
                widths=(0.4, 2.6, 1.2, 1.2, 1.4),
            )
        )
    else:
        blocks.append(Paragraph("The protocol and plan were not amended after registration."))
    return blocks


def _free_text(inp: ReportInput) -> list[Block]:
    counts: Mapping[str, Mapping[str, int]] = inp.results.get("free_text") or {}
    a = inp.answers
    texts = a[a["item_type"].astype(str) == "free_text"]
    texts = texts[texts["label"].notna() & (texts["label"].astype(str).str.strip() != "")]
    if not counts and texts.empty:
        return [_na("the instrument has no free-text item")]
    blocks: list[Block] = []
    if counts:
        blocks.append(
            Table(
                header=("Item", "Arm", "Answers"),
                rows=tuple(
                    (str(item), str(arm), str(n))
                    for item, by_arm in counts.items()
                    for arm, n in sorted(by_arm.items())
                ),
                caption="Free-text answers per item and arm.",
            )
        )
    if not texts.empty:
        ordered = texts.sort_values(["item", "arm", "case"], key=lambda s: s.astype(str))
        blocks.append(
            Table(
                header=("Item", "Arm", "Case", "Text"),
                rows=tuple(
                    (str(r.item), str(r.arm), str(r.case), str(r.label))
                    for r in ordered.itertuples(index=False)
                ),
                widths=(0.9, 0.9, 0.9, 4.0),
            )
        )
    return blocks


def _marks(inp: ReportInput) -> list[Block]:
    marks = inp.marks
    if marks is None or marks.empty:
        return [_na("no cue marks were placed")]
    region = (
        marks["region"].fillna("").astype(str)
        if "region" in marks
        else pd.Series("", index=marks.index)
    )
    table = (
        marks.assign(region=region.replace("", "(no mask)"))
        .groupby([marks["arm"].astype(str), marks["tag"].astype(str), "region"])
        .size()
        .reset_index(name="marks")
    )
    table.columns = pd.Index(["arm", "tag", "region", "marks"])
    return [_frame_table(table, "Cue marks per arm, tag and labelled region under the mark.")]


def _checklists(inp: ReportInput) -> list[Block]:
    items = checklist(inp)
    blocks: list[Block] = [
        Paragraph(
            "Where the evidence package answers each reporting item: a section of this report "
            "or a file of the package. Items a reader study of explanations cannot answer are "
            "listed as not answered, with the reason. Item numbers are shown only where they "
            "were checked against a published table of the guideline."
        )
    ]
    for name, full in GUIDELINES.items():
        mine = [i for i in items if i.guideline == name]
        tally = {
            s: sum(i.status == s for i in mine)
            for s in ("answered", "partly answered", "not answered")
        }
        blocks += [
            Heading(f"{name}: {full}"),
            Paragraph(", ".join(f"{n} {s}" for s, n in tally.items()) + "."),
            Table(
                header=("No.", "Item (topic)", "Status", "Where answered, or why not"),
                rows=tuple((i.number or "—", i.topic, i.status, i.where) for i in mine),
                widths=(0.4, 2.2, 1.0, 3.4),
            ),
        ]
    return blocks


def _environment(inp: ReportInput) -> list[Block]:
    env = dict(inp.environment or {})
    software = inp.results.get("software") or {}
    if not env and not software:
        return [_na("no environment was recorded")]
    blocks: list[Block] = []
    if software:
        blocks += [Heading("Software of the analysis run"), key_values(sorted(software.items()))]
    if env:
        blocks += [Heading("Environment of the package"), *_mapping_blocks(env, "")]
    return blocks
