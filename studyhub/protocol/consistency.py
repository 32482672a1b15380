"""Values that are valid alone but not together: checked before anything is locked.

Each check returns located problems (line, key path, value found, fix), so that a
sampling plan whose quotas cannot add up, or an endpoint naming an item the
instrument lacks, is refused by ``validate`` and ``register`` rather than by
``sample`` or ``analyze`` after the study is locked.
"""

from __future__ import annotations

import itertools
import math

from studyhub.protocol.plan import AnalysisPlan
from studyhub.protocol.schema import Protocol
from studyhub.protocol.yamlsource import Located, PathKey, Problem, format_path

__all__ = ["bin_names", "check_plan_levels", "check_plan_values", "check_sampling"]


def bin_names(cuts: list[float]) -> list[str]:
    """Names of the confidence bins cut at ``cuts``, as ``studyhub sample`` labels them."""
    edges = [0.0, *sorted(cuts), 1.0 + 1e-12]
    return [f"{lo:.2f}-{min(hi, 1.0):.2f}" for lo, hi in itertools.pairwise(edges)]


def _problem(src: Located, key: PathKey, message: str, fix: str) -> Problem:
    return Problem(src.line_of(key), format_path(key), message, fix)


def check_sampling(protocol: Protocol, src: Located) -> list[Problem]:
    """Quotas that add up to ``n_cases``, with keys that name existing strata values.

    Only a retrospective design draws by quotas (prospective enrollment takes
    consecutive eligible cases), so only there are they checked.
    """
    strat = protocol.sampling.stratify
    if protocol.design != "retrospective" or strat is None or strat.quotas is None:
        return []
    where: PathKey = ("sampling", "stratify", "quotas")
    problems: list[Problem] = []
    total = sum(strat.quotas.values())
    if total != protocol.sampling.n_cases:
        problems.append(
            _problem(
                src,
                where,
                f"the quotas add up to {total} but sampling.n_cases is {protocol.sampling.n_cases}",
                "make the quotas add up to n_cases (or set n_cases to their sum)",
            )
        )
    known = {
        "label": list(protocol.data.labels),
        "correctness": ["correct", "error"],
        "confidence_bin": bin_names(strat.confidence_bins),
    }
    for key in strat.quotas:
        parts = key.split("|")
        if len(parts) != len(strat.by):
            problems.append(
                _problem(
                    src,
                    (*where, key),
                    f"quota key {key!r} has {len(parts)} part(s) but stratify.by has "
                    f"{len(strat.by)} ({', '.join(strat.by)})",
                    f"write each key as {'|'.join(strat.by)}, one value per stratum",
                )
            )
            continue
        for name, value in zip(strat.by, parts, strict=True):
            if name in known and value not in known[name]:
                problems.append(
                    _problem(
                        src,
                        (*where, key),
                        f"quota key {key!r} names {name} {value!r}, which never occurs",
                        f"use one of {', '.join(known[name])} for {name}",
                    )
                )
    return problems


def check_plan_values(protocol: Protocol, plan: AnalysisPlan, src: Located) -> list[Problem]:
    """Options naming instrument items, margins that fit the item's scale, and a
    confidence level that matches alpha."""
    items = {i.id: i for i in protocol.instrument.items}
    problems: list[Problem] = check_plan_levels(plan, src)
    for n, ep in enumerate(plan.endpoints):
        item_id = ep.options.get("item")
        if isinstance(item_id, str) and item_id not in items:
            problems.append(
                _problem(
                    src,
                    ("endpoints", n, "options", "item"),
                    f"item {item_id!r} is not an item of the protocol's instrument",
                    f"use one of {', '.join(items)}",
                )
            )
        item = items.get(ep.measure)
        margin = ep.hypothesis.margin
        if (
            margin is not None
            and item is not None
            and item.scale_min is not None
            and item.scale_max is not None
            and margin >= item.scale_max - item.scale_min
        ):
            span = item.scale_max - item.scale_min
            problems.append(
                _problem(
                    src,
                    ("endpoints", n, "hypothesis", "margin"),
                    f"margin {margin:g} is not below the span {span} of item {item.id!r} "
                    f"(scale {item.scale_min}..{item.scale_max}), so no result could fail it",
                    f"give the largest acceptable deficit in scale points, below {span}",
                )
            )
    return problems


def check_plan_levels(plan: AnalysisPlan, src: Located) -> list[Problem]:
    """``confidence`` equal to ``1 - alpha``: intervals that agree with the verdicts.

    Every hypothesis a plan can state is one-sided (superiority, non-inferiority,
    agreement or correlation thresholds) and tested at ``alpha``; its interval is
    the one-sided lower bound at ``confidence``. Unless the two levels match, a
    reported interval can exclude the null value while the test does not reject.
    """
    if math.isclose(plan.confidence, 1 - plan.alpha, abs_tol=1e-9):
        return []
    data = src.data if isinstance(src.data, dict) else {}
    key: PathKey = ("confidence",) if "confidence" in data else ("alpha",)
    return [
        _problem(
            src,
            key,
            f"confidence {plan.confidence:g} does not match alpha {plan.alpha:g}: every "
            "hypothesis of a plan is one-sided and tested at alpha, and its interval is the "
            "one-sided lower bound at confidence, so an interval could exclude the null value "
            "while its test does not reject",
            f"set confidence: {1 - plan.alpha:g} (1 - alpha) or alpha: {1 - plan.confidence:g} "
            "(a one-sided 2.5 % test with the lower limit of a two-sided 95 % interval is "
            "alpha: 0.025 with confidence: 0.975)",
        )
    ]
