"""The report's record sections: sampling, example stimuli, deviations and amendments,
free text, cue marks, reporting checklists and the environment.

Each function returns the blocks of one section of
:data:`studyhub.evidence.report_sections.SECTION_TITLES`; a part the study does
not have is one sentence saying so.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from studyhub.evidence import figures
from studyhub.evidence.checklist import GUIDELINES, checklist
from studyhub.evidence.report_document import (
    Block,
    FigureBlock,
    Heading,
    Paragraph,
    Preformatted,
    Table,
    frame_table,
    key_values,
    mapping_blocks,
    not_applicable,
)
from studyhub.evidence.report_input import ReportInput

__all__ = [
    "checklists_section",
    "deviations_section",
    "environment_section",
    "free_text_section",
    "marks_section",
    "montage_section",
    "sampling_section",
]


def sampling_section(inp: ReportInput) -> list[Block]:
    """The sampling report: a dict as tables (flow, strata, balance, diversity), or text."""
    rep = inp.sampling_report
    if rep is None:
        return [
            not_applicable(
                "no sampling report was recorded (cases were not drawn by a sampling plan)"
            )
        ]
    if isinstance(rep, str):
        return [Preformatted(rep)]
    return mapping_blocks(rep, "")


def montage_section(inp: ReportInput) -> list[Block]:
    """Example stimuli per arm, as one montage figure (after unblinding only)."""
    if not inp.montage:
        return [not_applicable("no example stimuli were selected")]
    arms = sorted({str(a) for a, _ in inp.montage})
    return [
        FigureBlock(
            figures.montage_figure(inp.montage),
            f"Example stimuli, one row per arm ({', '.join(arms)}), shown after unblinding.",
        )
    ]


def deviations_section(inp: ReportInput) -> list[Block]:
    """Every deviation from the plan and every amendment, or a sentence saying there was none."""
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


def free_text_section(inp: ReportInput) -> list[Block]:
    """Free-text answers counted per item and arm, then listed."""
    counts: Mapping[str, Mapping[str, int]] = inp.results.get("free_text") or {}
    a = inp.answers
    texts = a[a["item_type"].astype(str) == "free_text"]
    texts = texts[texts["label"].notna() & (texts["label"].astype(str).str.strip() != "")]
    if not counts and texts.empty:
        return [not_applicable("the instrument has no free-text item")]
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


def marks_section(inp: ReportInput) -> list[Block]:
    """Cue marks counted per arm, tag and labelled region."""
    marks = inp.marks
    if marks is None or marks.empty:
        return [not_applicable("no cue marks were placed")]
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
    return [frame_table(table, "Cue marks per arm, tag and labelled region under the mark.")]


def checklists_section(inp: ReportInput) -> list[Block]:
    """CLAIM 2024, STARD-AI and DECIDE-AI items: where the package answers them, or why not."""
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


def environment_section(inp: ReportInput) -> list[Block]:
    """The software of the analysis run and the environment of the package."""
    env = dict(inp.environment or {})
    software = inp.results.get("software") or {}
    if not env and not software:
        return [not_applicable("no environment was recorded")]
    blocks: list[Block] = []
    if software:
        blocks += [Heading("Software of the analysis run"), key_values(sorted(software.items()))]
    if env:
        blocks += [Heading("Environment of the package"), *mapping_blocks(env, "")]
    return blocks
