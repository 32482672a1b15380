"""Reporting checklists: the items of CLAIM 2024, STARD-AI and DECIDE-AI the package answers.

A studyhub study is a blinded reader study of explanation maps; it answers the
items about its design, registration, sampling, flow, statistics, agreement and
data availability from its own records, and cannot answer items about the
manuscript (title, abstract, discussion), the model's development, ethics
approval, funding or clinical deployment. Each item names where it is answered:
a section of this report (by its title) or a file of the evidence package
(``protocol/``, ``plan/``, ``data/``, ``audit/``, ``results/results.json``,
``report/``, ``environment.json``, ``SHA256SUMS``, ``ro-crate-metadata.json``),
or says why it is not.

Items are named by their topic. An item number is given only where it was read
in a published table of the guideline; the other numbers could not be checked
against the guideline's own text here, so none is printed.

Sources
-------
- CLAIM 2024: Tejani AS, Klontzas ME, Gatti AA, Mongan JT, Moy L, Park SH, Kahn CE Jr.
  Checklist for Artificial Intelligence in Medical Imaging (CLAIM): 2024 Update.
  Radiol Artif Intell 2024;6(4):e240300. doi:10.1148/ryai.240300. Topics taken
  from the 44-item list (reference standard, annotation, data partitions,
  testing, explainability, registration, availability, ...).
- STARD-AI: Sounderajah V et al. The STARD-AI reporting guideline for diagnostic
  accuracy studies using artificial intelligence. Nat Med 2025;31(10):3283-3289.
  doi:10.1038/s41591-025-03953-8 (extends STARD 2015, Bossuyt et al. BMJ 2015).
- DECIDE-AI: Vasey B et al. Reporting guideline for the early-stage clinical
  evaluation of decision support systems driven by artificial intelligence:
  DECIDE-AI. BMJ 2022;377:e070904 and Nat Med 2022;28(5):924-933. Items 1-4 and
  the generic items I-III were read in the checklist table reproduced in Eye
  (2025), doi:10.1038/s41433-025-03678-5, Table 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from studyhub.evidence.report_input import ReportInput

__all__ = ["GUIDELINES", "ChecklistItem", "checklist"]

Status = Literal["answered", "partly answered", "not answered"]

GUIDELINES = {
    "CLAIM 2024": "Checklist for Artificial Intelligence in Medical Imaging, 2024 update "
    "(Tejani et al., Radiol Artif Intell 2024;6(4):e240300)",
    "STARD-AI": "Standards for Reporting of Diagnostic Accuracy Studies, AI extension "
    "(Sounderajah et al., Nat Med 2025;31:3283-3289)",
    "DECIDE-AI": "Early-stage clinical evaluation of AI decision support "
    "(Vasey et al., BMJ 2022;377:e070904)",
}


@dataclass(frozen=True)
class ChecklistItem:
    """One guideline item: its topic, whether the package answers it, and where or why not."""

    guideline: str
    number: str
    topic: str
    status: Status
    where: str


# Places in the package, named once so that they stay consistent.
PROTOCOL, PLAN, DATA, AUDIT = "protocol/", "plan/", "data/", "audit/"
RESULTS, ENV, CRATE = "results/results.json", "environment.json", "ro-crate-metadata.json"
SUMS = "SHA256SUMS"

YES: Status = "answered"
PART: Status = "partly answered"
NO: Status = "not answered"

MANUSCRIPT = "the manuscript's own text; the package holds no narrative"
MODEL = "the model's development records; the package holds the model entry point, not its training"
PSEUDONYMS = "raters are pseudonymous; their qualifications are kept outside the package"


def _s(title: str) -> str:
    return f"report section “{title}”"


CRIT, STUDY, FLOW = (
    _s("Success criteria"),
    _s("Study and registration"),
    _s("Flow of cases and raters"),
)
AGREE, DEVS, SAMPLING = _s("Agreement"), _s("Deviations and amendments"), _s("Sampling report")
ENVIRONMENT = _s("Environment")


def checklist(inp: ReportInput) -> list[ChecklistItem]:
    """The checklist items of the three guidelines, answered for this study.

    Items whose answer depends on the study (MRMC accuracy, calibration,
    sampling) are answered only when the input holds those parts.
    """
    items: list[ChecklistItem] = []

    def add(guideline: str, number: str, topic: str, status: Status, *where: str) -> None:
        items.append(ChecklistItem(guideline, number, topic, status, "; ".join(where)))

    if inp.mrmc is not None:
        accuracy: tuple[Status, str] = (YES, f"{_s('MRMC reader ROC analysis')}; {RESULTS}")
    else:
        accuracy = (NO, "not applicable: the plan has no reader-diagnosis (MRMC) endpoint")
    if inp.calibration is not None:
        calibration: tuple[Status, str] = (YES, f"{_s('Calibration')}; {DATA} (cases)")
    else:
        calibration = (NO, "no calibration data were recorded for this study")
    if inp.sampling_report is not None:
        baseline: tuple[Status, str] = (PART, f"{SAMPLING} (strata, standardized differences)")
        selection: tuple[Status, str] = (YES, f"{SAMPLING}; {PROTOCOL} (sampling)")
    else:
        baseline = (NO, "no sampling report was recorded (prospective or unsampled study)")
        selection = (PART, f"{PROTOCOL} (eligibility and enrolment)")
    registration = "registration hash and time; no public registry number"

    c = "CLAIM 2024"
    add(c, "", "Title identifying AI methodology", NO, MANUSCRIPT)
    add(c, "", "Structured abstract", NO, MANUSCRIPT)
    add(c, "", "Background and clinical role", NO, MANUSCRIPT)
    add(c, "", "Objectives and hypotheses", YES, CRIT, PLAN)
    add(c, "", "Prospective or retrospective design", YES, STUDY, PROTOCOL)
    add(c, "", "Study goal (e.g. non-inferiority)", YES, f"{CRIT} (hypotheses)", PLAN)
    add(c, "", "Data sources", PART, f"{PROTOCOL} (data section)", f"{DATA} (case manifest)")
    add(c, "", "Eligibility and selection of the data", *selection)
    add(
        c,
        "",
        "De-identification",
        PART,
        f"{DATA}: raters and cases are pseudonyms",
        "de-identifying the images is the data provider's",
    )
    add(c, "", "Handling of missing data", YES, DEVS, PLAN)
    add(
        c,
        "",
        "Reference standard: definition",
        PART,
        f"{PROTOCOL} (labels)",
        f"{DATA} (cases: truth)",
    )
    add(c, "", "Reference standard: rationale", NO, MANUSCRIPT)
    add(c, "", "Annotators: source, qualifications, training", NO, PSEUDONYMS)
    add(c, "", "Inter- and intra-rater variability", YES, AGREE, RESULTS)
    add(c, "", "Testing-set size and its derivation", YES, f"{PLAN} (power)", FLOW)
    add(c, "", "Data partitions and their disjointness", NO, MODEL)
    add(c, "", "Model architecture, initialization, training, selection", NO, MODEL)
    add(c, "", "Software libraries and versions", YES, ENVIRONMENT, ENV)
    add(c, "", "Performance metrics, uncertainty and statistical tests", YES, CRIT, RESULTS)
    add(
        c,
        "",
        "Robustness or sensitivity analysis",
        PART,
        f"{CRIT} (the plan's secondary and sensitivity endpoints)",
    )
    add(
        c,
        "",
        "Explainability methods and their validation",
        YES,
        _s("Arm comparisons"),
        _s("Rating distributions"),
        f"{PROTOCOL} (arms)",
    )
    add(c, "", "Internal and external testing", NO, MODEL)
    add(c, "", "Trial registration", PART, f"{STUDY} ({registration})")
    add(c, "", "Numbers included and excluded, with flowchart", YES, FLOW)
    add(c, "", "Characteristics of the cases", *baseline)
    add(c, "", "Diagnostic accuracy estimates with confidence intervals", *accuracy)
    add(c, "", "Calibration of the model's probabilities", *calibration)
    add(
        c,
        "",
        "Failure analysis",
        NO,
        f"no failure analysis is generated; misclassified cases are in {DATA} (cases)",
    )
    add(c, "", "Limitations and implications", NO, MANUSCRIPT)
    add(c, "", "Full protocol", YES, PROTOCOL, PLAN)
    add(
        c,
        "",
        "Availability of data and software",
        PART,
        DATA,
        CRATE,
        SUMS,
        "model weights are not included",
    )
    add(c, "", "Funding", NO, MANUSCRIPT)

    s = "STARD-AI"
    add(s, "", "Title and abstract", NO, MANUSCRIPT)
    add(s, "", "Study objectives and hypotheses", YES, CRIT, PLAN)
    add(s, "", "Prospective or retrospective data collection", YES, STUDY, PROTOCOL)
    add(s, "", "Ethics approval", NO, "ethics approval is not recorded by studyhub")
    add(s, "", "Eligibility criteria at participant and data level", *selection)
    add(s, "", "Consecutive, random or convenience series", *selection)
    add(s, "", "Data source", PART, PROTOCOL, DATA)
    add(
        s,
        "",
        "Dataset annotation (who, how)",
        NO,
        "the reference-standard annotation is the data provider's",
    )
    add(s, "", "Software and version of the index test", YES, ENV, ENVIRONMENT)
    add(
        s,
        "",
        "Index test in detail (explanation arms, reading)",
        YES,
        f"{PROTOCOL} (arms, rendering, reading)",
    )
    add(s, "", "Index test development", NO, MODEL)
    add(s, "", "End users and their expertise", NO, PSEUDONYMS)
    add(s, "", "Reference standard", PART, f"{PROTOCOL} (labels)", f"{DATA} (cases: truth)")
    add(
        s, "", "Blinding of readers", YES, f"{PROTOCOL} (design)", f"{AUDIT} (the unblinding event)"
    )
    add(s, "", "Statistical methods", YES, PLAN, CRIT)
    add(s, "", "Missing and indeterminate results", YES, DEVS)
    add(s, "", "Variability analyses", YES, AGREE)
    add(s, "", "Intended sample size and its determination", YES, f"{PLAN} (power)")
    add(s, "", "Fairness and error analysis", NO, "no subgroup fairness analysis is generated")
    add(s, "", "Flow diagram", YES, FLOW)
    add(s, "", "Baseline characteristics", *baseline)
    add(
        s,
        "",
        "Cross-tabulation of index test by reference standard",
        PART,
        f"{DATA} (answers and cases hold both; the report does not tabulate them)",
    )
    add(s, "", "Accuracy estimates and their precision", *accuracy)
    add(s, "", "Limitations, applicability, ethical considerations", NO, MANUSCRIPT)
    add(s, "", "Registration", PART, f"{STUDY} ({registration})")
    add(s, "", "Where the full protocol can be accessed", YES, PROTOCOL, PLAN)
    add(s, "", "Funding and commercial interests", NO, MANUSCRIPT)
    add(s, "", "Data and code availability", PART, DATA, CRATE, SUMS)
    add(
        s,
        "",
        "Outputs stored, auditable and available for evaluation",
        YES,
        AUDIT,
        RESULTS,
        SUMS,
        CRATE,
    )

    d = "DECIDE-AI"
    add(d, "1", "Title", NO, MANUSCRIPT)
    add(d, "I", "Abstract", NO, MANUSCRIPT)
    add(
        d,
        "2",
        "Intended use (condition, users, care pathway)",
        NO,
        "the intended clinical use is the sponsor's statement, not recorded here",
    )
    add(d, "II", "Objectives", YES, CRIT, PLAN)
    add(
        d,
        "III",
        "Research governance (protocol, registration, ethics)",
        PART,
        PROTOCOL,
        f"{STUDY} (ethics approval not recorded)",
    )
    add(
        d,
        "3",
        "Participants: cases and users, their numbers, user training",
        PART,
        FLOW,
        f"{PROTOCOL} (training items)",
    )
    add(d, "4", "AI system: version and algorithm", PART, f"{PROTOCOL} (model entry, arms)", ENV)
    add(
        d,
        "",
        "Implementation in the clinical workflow",
        NO,
        "not applicable: a blinded reader study runs outside the clinical workflow",
    )
    add(
        d,
        "",
        "Safety and errors",
        NO,
        "not applicable: no patient is exposed to the system in a reader study",
    )
    add(
        d,
        "",
        "Human factors (time on task, usability)",
        PART,
        f"{DATA} (answers: time on task); usability is not assessed",
    )
    add(d, "", "Modifications during the study", YES, DEVS, AUDIT)
    add(
        d,
        "",
        "Human-computer agreement",
        NO,
        "not measured unless the plan has an accuracy endpoint against the model's prediction",
    )
    add(d, "", "Outcomes and analysis", YES, PLAN, CRIT, RESULTS)
    add(d, "", "Patient involvement", NO, MANUSCRIPT)
    add(d, "", "Main results", YES, CRIT)
    add(d, "", "Subgroup analyses", NO, "no subgroup analysis is generated")
    add(d, "", "Strengths, limitations, conflicts of interest", NO, MANUSCRIPT)
    add(d, "", "Data availability", PART, DATA, CRATE, SUMS)
    return items
