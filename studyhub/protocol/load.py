"""Load a protocol and its analysis plan, check them together, hash them.

``load_study(path)`` is the one entry point: it returns a :class:`StudyFiles`
or raises a :class:`~studyhub.errors.ProtocolError` whose message names the
file, the line, the key path and the fix of every problem found.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from studyhub.protocol.consistency import check_plan_values, check_sampling
from studyhub.protocol.item_fit import check_item_fit, cue_warnings
from studyhub.protocol.plan import AnalysisPlan
from studyhub.protocol.problems import validate
from studyhub.protocol.schema import Protocol
from studyhub.protocol.yamlsource import Located, Problem, format_path, read_yaml

__all__ = [
    "StudyFiles",
    "canonical_json",
    "load_plan",
    "load_protocol",
    "load_study",
    "sha256_text",
]

#: Version of the canonical form; part of every registration hash.
CANONICAL_VERSION = "studyhub-canonical-v1"


@dataclass(frozen=True)
class StudyFiles:
    """A validated protocol and plan, with their texts, canonical forms and hashes."""

    protocol: Protocol
    plan: AnalysisPlan
    protocol_path: Path
    plan_path: Path
    protocol_text: str
    plan_text: str
    #: Things that are allowed but likely unintended (a cue that gives an answer away);
    #: ``validate`` prints them, they are not part of any hash.
    warnings: tuple[str, ...] = ()

    # Computed once, and by load_study before anything is written: a value that
    # cannot be canonicalised must fail while nothing is open.
    @cached_property
    def protocol_canonical(self) -> str:
        return canonical_json(self.protocol)

    @cached_property
    def plan_canonical(self) -> str:
        return canonical_json(self.plan)

    @property
    def protocol_hash(self) -> str:
        return sha256_text(self.protocol_canonical)

    @property
    def plan_hash(self) -> str:
        return sha256_text(self.plan_canonical)

    @property
    def registration_hash(self) -> str:
        """SHA-256 over both canonical forms: what registration locks."""
        return sha256_text(
            f"{CANONICAL_VERSION}\nprotocol {self.protocol_hash}\nplan {self.plan_hash}\n"
        )


def sha256_text(text: str) -> str:
    """Hex SHA-256 of ``text`` encoded as UTF-8."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def canonical_json(model: BaseModel) -> str:
    """The canonical form: the validated values as written, sorted keys, no spaces.

    Whitespace, comments, key order, quoting and number spelling (``0.50`` or
    ``0.5``) of the YAML do not change it; any change of what is written does.
    Defaults that the file leaves out are left out too (``exclude_unset``), so a
    later studyhub that adds an optional field does not change the hash of a
    protocol registered before it.
    """
    return json.dumps(
        model.model_dump(mode="json", exclude_unset=True),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )


def load_protocol(path: Path) -> tuple[Protocol, Located]:
    """Parse and validate one protocol file."""
    located = read_yaml(path, what="protocol")
    if "endpoints" in located.data and "arms" not in located.data:
        raise located.fail(
            [
                Problem(
                    located.line_of(("endpoints",)),
                    "endpoints",
                    "this file is an analysis plan, not a protocol",
                    "pass the protocol file that names this plan in its analysis_plan key",
                )
            ]
        )
    return validate(Protocol, located), located


def load_plan(path: Path) -> tuple[AnalysisPlan, Located]:
    """Parse and validate one analysis plan file."""
    located = read_yaml(path, what="analysis plan")
    return validate(AnalysisPlan, located), located


def load_study(protocol_path: str | Path) -> StudyFiles:
    """Load, validate and cross-check a protocol and the analysis plan it names.

    Raises
    ------
    ProtocolError
        Listing every problem of the first file that has any, each with its line,
        key path and fix.
    """
    path = Path(protocol_path)
    protocol, p_src = load_protocol(path)
    problems = (
        _check_protocol_files(protocol, p_src)
        + _check_consistency(protocol, p_src)
        + check_sampling(protocol, p_src)
    )
    if problems:
        raise p_src.fail(problems)
    plan_path = Path(os.path.normpath(path.parent / protocol.analysis_plan))
    plan, a_src = load_plan(plan_path)
    problems = (
        _cross_check(protocol, plan, a_src)
        + check_plan_values(protocol, plan, a_src)
        + check_item_fit(protocol, plan, a_src)
    )
    if problems:
        raise a_src.fail(problems)
    files = StudyFiles(
        protocol=protocol,
        plan=plan,
        protocol_path=path,
        plan_path=plan_path,
        protocol_text=p_src.text,
        plan_text=a_src.text,
        warnings=tuple(cue_warnings(protocol, plan)),
    )
    files.registration_hash  # noqa: B018 - canonicalise now, before any caller writes
    return files


def _check_protocol_files(protocol: Protocol, src: Located) -> list[Problem]:
    base = src.file.parent
    problems: list[Problem] = []
    checks: list[tuple[tuple[str, ...], str | None, str]] = [
        (("analysis_plan",), protocol.analysis_plan, "file"),
        (("data", "path"), protocol.data.path, "folder" if protocol.data.kind != "csv" else "file"),
        (("model", "weights"), protocol.model.weights, "file"),
    ]
    for key, value, kind in checks:
        if value is None:
            continue
        target = base / value
        exists = target.is_dir() if kind == "folder" else target.is_file()
        if not exists:
            problems.append(
                Problem(
                    src.line_of(key),
                    format_path(key),
                    f"{kind} {str(target)!r} does not exist",
                    f"give an existing {kind}, relative to the protocol's folder {str(base)!r}",
                )
            )
    return problems


def _check_consistency(protocol: Protocol, src: Located) -> list[Problem]:
    """Rules that span sections of the protocol."""
    problems: list[Problem] = []
    key: tuple[str | int, ...]
    labels = protocol.data.labels
    for k, label in enumerate(protocol.sampling.eligibility.labels or []):
        if label not in labels:
            key = ("sampling", "eligibility", "labels", k)
            problems.append(
                Problem(
                    src.line_of(key),
                    format_path(key),
                    f"label {label!r} is not in data.labels {labels}",
                    f"use one of {', '.join(labels)}",
                )
            )
    for k, arm in enumerate(protocol.arms):
        if (
            arm.method in ("gradcam", "guided_gradcam")
            and not protocol.model.target_layer
            and "layer" not in arm.params
        ):
            key = ("arms", k, "params")
            problems.append(
                Problem(
                    src.line_of(("arms", k)),
                    format_path(key),
                    f"arm {arm.id!r} uses {arm.method} but no layer is named",
                    "set model.target_layer (e.g. features.conv3) or params.layer on the arm",
                )
            )
    if protocol.reading.task == "reader_diagnosis" and not any(
        i.type == "diagnosis" for i in protocol.instrument.items
    ):
        key = ("reading", "task")
        problems.append(
            Problem(
                src.line_of(key),
                format_path(key),
                "reading.task is reader_diagnosis but the instrument has no diagnosis item",
                "add an instrument item with type: diagnosis, or use task: rate_explanation",
            )
        )
    return problems


def _cross_check(protocol: Protocol, plan: AnalysisPlan, src: Located) -> list[Problem]:
    """The plan's references must exist in the protocol."""
    problems: list[Problem] = []
    arms = [a.id for a in protocol.arms]
    items = {i.id: i for i in protocol.instrument.items}
    if plan.protocol != protocol.id:
        problems.append(
            Problem(
                src.line_of(("protocol",)),
                "protocol",
                f"the plan belongs to protocol {plan.protocol!r}, but it is named by "
                f"protocol {protocol.id!r}",
                f"set protocol: {protocol.id} or point the protocol at the right plan",
            )
        )
    for n, ep in enumerate(plan.endpoints):
        where = ("endpoints", n)
        if ep.comparison is not None:
            for side in ("arm", "versus"):
                arm = getattr(ep.comparison, side)
                if arm not in arms:
                    problems.append(
                        Problem(
                            src.line_of((*where, "comparison", side)),
                            format_path((*where, "comparison", side)),
                            f"arm {arm!r} is not an arm of protocol {protocol.id!r}",
                            f"use one of {', '.join(arms)}",
                        )
                    )
        for k, arm in enumerate(ep.arms or []):
            if arm not in arms:
                problems.append(
                    Problem(
                        src.line_of((*where, "arms", k)),
                        format_path((*where, "arms", k)),
                        f"arm {arm!r} is not an arm of protocol {protocol.id!r}",
                        f"use one of {', '.join(arms)}",
                    )
                )
        problems.extend(_check_measure(ep.measure, ep.statistic, items, protocol, src, where))
    return problems


def _check_measure(
    measure: str,
    statistic: str,
    items: dict[str, Any],
    protocol: Protocol,
    src: Located,
    where: tuple[str | int, ...],
) -> list[Problem]:
    key = (*where, "measure")
    line, path = src.line_of(key), format_path(key)
    if measure == "auc":
        if protocol.reading.task != "reader_diagnosis":
            return [
                Problem(
                    line,
                    path,
                    "measure 'auc' needs a reader_diagnosis task, but reading.task is "
                    f"{protocol.reading.task!r}",
                    "set reading.task: reader_diagnosis in the protocol, or measure an item",
                )
            ]
        return []
    if measure.startswith("metric:") or (measure == "cue_marks" and statistic == "cue_marks"):
        return []
    if measure not in items:
        return [
            Problem(
                line,
                path,
                f"measure {measure!r} is not an item of the protocol's instrument",
                f"use one of {', '.join(items)}, 'auc', 'cue_marks' or 'metric:NAME'",
            )
        ]
    item = items[measure]
    if item.type == "free_text":
        return [
            Problem(
                line,
                path,
                f"item {measure!r} is free text and cannot be analysed by {statistic}",
                "measure a likert, yes_no, single_choice or diagnosis item; free text is "
                "counted and listed in the report, never analysed",
            )
        ]
    return []
