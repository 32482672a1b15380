"""The criteria table as the command line prints it (analyze, stats criteria, verify)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

__all__ = ["interval_text", "level_text", "print_criteria"]


def interval_text(r: dict[str, Any]) -> str:
    """``≥ low`` for a one-sided lower bound, ``low to high`` for a two-sided interval."""
    low, high = r.get("ci_low"), r.get("ci_high")
    if low is None:
        return "—"
    if r.get("ci_sides") == 1 or high is None or high == float("inf"):
        return f"≥ {low:.3f}"
    return f"{low:.3f} to {high:.3f}"


def level_text(r: dict[str, Any]) -> str:
    """The interval's coverage, sides and multiplicity adjustment in words."""
    if r.get("ci_level") is None or r.get("ci_low") is None:
        return "no interval"
    kind = "one-sided lower bound" if r.get("ci_sides") == 1 else "two-sided interval"
    return f"{kind} at {100 * r['ci_level']:.4g} %, {r.get('ci_adjustment', '')}"


def print_criteria(criteria: dict[str, Any], out: Console, *, exploratory: bool = False) -> None:
    """Print the verdict of every endpoint, the criterion text verbatim, and the study verdict.

    ``criteria`` is the JSON form an analysis run stores (``results["criteria"]``).
    With ``exploratory`` every verdict is labelled exploratory (the plan applied is
    not the registered one).
    """
    family = criteria.get("family", [])
    table = Table(
        title=f"Success criteria of {criteria['plan_id']} (alpha {criteria['alpha']:g}, "
        f"{criteria['multiplicity']} over {len(family)} primary comparison(s))"
        + (" — EXPLORATORY" if exploratory else "")
    )
    for col in ("endpoint", "estimate", "CI", "p (adj.)", "verdict"):
        table.add_column(col, no_wrap=col in ("verdict", "CI"))
    for r in criteria["results"]:
        p = "—" if r.get("p_adjusted") is None else f"{r['p_adjusted']:.4g}"
        est = "—" if r.get("estimate") is None else f"{r['estimate']:.3f}"
        name = f"{r['endpoint']}{' (primary)' if r['primary'] else ''}"
        ci = interval_text(r)
        if r.get("ci_level") is not None and ci != "—":
            ci += f" ({100 * r['ci_level']:.4g} %)"
        verdict = f"{r['verdict']} (exploratory)" if exploratory else r["verdict"]
        table.add_row(*map(Text, (name, est, ci, p, verdict)))
    out.print(table)
    out.print("Why each verdict:", markup=False)
    for r in criteria["results"]:
        line = f"- {r['endpoint']} ({r['hypothesis']}): {r['verdict']}: {r['reason']}"
        out.print(line, markup=False)
    out.print("Success criteria as registered (verbatim):", markup=False)
    for r in criteria["results"]:
        out.print(f"- {r['endpoint']}: {r['criterion']}", markup=False)
    out.print(
        "Each interval's level and adjustment, and the population it holds for:", markup=False
    )
    for r in criteria["results"]:
        out.print(
            f"- {r['endpoint']}: {level_text(r)}; population: {r['population']}", markup=False
        )
    out.print(f"success rule: {criteria['success_rule']}", markup=False)
    not_passed = [
        f"{r['endpoint']} ({r['verdict']})"
        for r in criteria["results"]
        if r["primary"] and r["verdict"] != "PASS"
    ]
    tag = "exploratory: " if exploratory else ""
    out.print(
        f"{tag}study success: all primary endpoints passed"
        if criteria["success"]
        else f"{tag}study success criteria NOT met: {', '.join(not_passed)}",
        markup=False,
    )
