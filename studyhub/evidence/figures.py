"""The report's figures, drawn with matplotlib (Agg canvas) and returned as PNG bytes.

Each function takes the data of one section and returns the PNG of one figure;
nothing here decides what is applicable (that is :mod:`studyhub.evidence.report_sections`).
Figures use matplotlib's object API (``Figure`` on an Agg canvas), so drawing
never touches pyplot's global state or opens a window.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

__all__ = [
    "agreement_figure",
    "correlation_figure",
    "distribution_figure",
    "flow_figure",
    "forest_figure",
    "margin_of",
    "montage_figure",
    "reliability_figure",
    "roc_figure",
]

DPI = 110
_VERDICT_COLOURS = {"PASS": "#1b7837", "FAIL": "#b2182b", "NOT EVALUABLE": "#777777"}

CASE_STEPS = ("pool", "eligible", "sampled", "rated", "analysed")
RATER_STEPS = ("invited", "started", "completed", "analysed")


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    return buf.getvalue()


def margin_of(hypothesis: str) -> float | None:
    """The non-inferiority margin stated in a result's hypothesis text, if any."""
    m = re.search(r"margin ([-+0-9.eE]+)\)", hypothesis or "")
    return float(m.group(1)) if m else None


def flow_figure(flow: Mapping[str, Mapping[str, Any]]) -> bytes:
    """CONSORT-style flow: cases (pool to analysed) and raters (invited to analysed)."""
    fig = Figure(figsize=(8.0, 4.6))
    for col, (who, steps) in enumerate((("cases", CASE_STEPS), ("raters", RATER_STEPS))):
        ax = fig.add_subplot(1, 2, col + 1)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, len(CASE_STEPS))
        ax.axis("off")
        ax.set_title(f"Flow of {who}")
        counts = flow.get(who, {})
        n = len(steps)
        for i, step in enumerate(steps):
            y = len(CASE_STEPS) - 0.5 - i * (len(CASE_STEPS) / n)
            value = counts.get(step, "n/a")
            ax.text(
                0.4,
                y,
                f"{step}\nn = {value}",
                ha="center",
                va="center",
                fontsize=9,
                bbox={"boxstyle": "round,pad=0.4", "fc": "#eef3f8", "ec": "#34577a"},
            )
            if i + 1 < n:
                y_next = len(CASE_STEPS) - 0.5 - (i + 1) * (len(CASE_STEPS) / n)
                ax.annotate(
                    "",
                    xy=(0.4, y_next + 0.35),
                    xytext=(0.4, y - 0.35),
                    arrowprops={"arrowstyle": "->", "color": "#34577a"},
                )
        if who == "raters" and "excluded" in counts:
            ax.text(
                0.88,
                len(CASE_STEPS) / 2,
                f"excluded\nn = {counts['excluded']}",
                ha="center",
                va="center",
                fontsize=9,
                bbox={"boxstyle": "round,pad=0.4", "fc": "#fbeaea", "ec": "#b2182b"},
            )
    return _png(fig)


def forest_figure(results: Sequence[Mapping[str, Any]]) -> bytes:
    """Arm differences with their one-sided lower bounds, zero and the margins drawn.

    ``results`` are comparison endpoints with an estimate (EndpointResult dicts).
    A one-sided interval (``ci_high`` infinite) is drawn as an arrow to the right.
    """
    fig = Figure(figsize=(8.0, 0.9 + 0.7 * len(results)))
    ax = fig.add_subplot(1, 1, 1)
    lows = [r["ci_low"] for r in results if _finite(r.get("ci_low"))]
    ests = [float(r["estimate"]) for r in results]
    margins = [-m for r in results if (m := margin_of(str(r.get("hypothesis", "")))) is not None]
    lo = min([*lows, *ests, *margins, 0.0])
    hi = max([*ests, *[r["ci_high"] for r in results if _finite(r.get("ci_high"))], 0.0])
    span = max(hi - lo, 1e-6)
    right = hi + 0.35 * span
    for i, r in enumerate(results):
        y = len(results) - 1 - i
        colour = _VERDICT_COLOURS.get(str(r.get("verdict")), "#333333")
        low, high = r.get("ci_low"), r.get("ci_high")
        if low is not None and _finite(low):
            end = float(high) if high is not None and _finite(high) else right
            ax.annotate(
                "",
                xy=(end, y),
                xytext=(float(low), y),
                arrowprops={"arrowstyle": "|-|" if _finite(high) else "->", "color": colour},
            )
            ax.plot([float(low)], [y], "|", color=colour, ms=12, mew=1.5)
        ax.plot([float(r["estimate"])], [y], "o", color=colour, ms=7)
        m = margin_of(str(r.get("hypothesis", "")))
        if m is not None:
            ax.plot([-m, -m], [y - 0.4, y + 0.4], color="#d6604d", ls="--", lw=1.5)
            ax.text(-m, y + 0.42, f"margin −{m:g}", color="#d6604d", fontsize=8, ha="center")
    ax.axvline(0.0, color="#444444", lw=0.8)
    ax.set_yticks(range(len(results)))
    ax.set_yticklabels(
        [f"{r['endpoint']}\n({r.get('comparison') or ''})" for r in reversed(results)], fontsize=8
    )
    ax.set_xlim(lo - 0.1 * span, right)
    ax.set_ylim(-0.7, len(results) - 0.3)
    ax.set_xlabel("difference between arms (arm − versus), with one-sided lower bound")
    return _png(fig)


def distribution_figure(answers: pd.DataFrame, item: str) -> bytes:
    """Share of each rating level of one item, per arm (grouped bars)."""
    sub = answers[answers["item"].astype(str) == item]
    values = pd.to_numeric(sub["value"], errors="coerce")
    sub = sub.assign(value=values).dropna(subset=["value"])
    levels = sorted(sub["value"].unique())
    arms = sorted(map(str, sub["arm"].unique()))
    fig = Figure(figsize=(8.0, 3.4))
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / max(len(arms), 1)
    x = np.arange(len(levels))
    for k, arm in enumerate(arms):
        counts = sub[sub["arm"].astype(str) == arm]["value"].value_counts()
        share = np.array([counts.get(v, 0) for v in levels], dtype=float)
        share /= max(share.sum(), 1.0)
        ax.bar(x + (k - (len(arms) - 1) / 2) * width, share, width, label=arm)
    ax.set_xticks(x)
    ax.set_xticklabels([f"{v:g}" for v in levels])
    ax.set_xlabel(f"{item} (rating)")
    ax.set_ylabel("share of ratings")
    ax.legend(title="arm", fontsize=8)
    return _png(fig)


def agreement_figure(results: Sequence[Mapping[str, Any]]) -> bytes:
    """Agreement and correlation estimates with their lower bounds and thresholds."""
    fig = Figure(figsize=(8.0, 0.9 + 0.6 * len(results)))
    ax = fig.add_subplot(1, 1, 1)
    for i, r in enumerate(results):
        y = len(results) - 1 - i
        colour = _VERDICT_COLOURS.get(str(r.get("verdict")), "#333333")
        est = float(r["estimate"])
        if _finite(r.get("ci_low")):
            high = float(r["ci_high"]) if _finite(r.get("ci_high")) else 1.0
            ax.plot([float(r["ci_low"]), high], [y, y], color=colour, lw=2)
        ax.plot([est], [y], "o", color=colour, ms=7)
        m = re.search(r"threshold ([-+0-9.eE]+)\)", str(r.get("hypothesis", "")))
        if m:
            t = float(m.group(1))
            ax.plot([t, t], [y - 0.4, y + 0.4], color="#d6604d", ls="--", lw=1.5)
    ax.set_yticks(range(len(results)))
    ax.set_yticklabels([f"{r['endpoint']}\n({r['statistic']})" for r in reversed(results)])
    ax.set_xlim(-0.1, 1.05)
    ax.set_ylim(-0.7, len(results) - 0.3)
    ax.set_xlabel("estimate with one-sided lower bound (dashed: the plan's threshold)")
    return _png(fig)


def correlation_figure(data: pd.DataFrame) -> bytes:
    """Mean rating of each stimulus against each quantitative metric, coloured by arm."""
    metrics = sorted(map(str, data["metric"].unique()))
    fig = Figure(figsize=(4.0 * len(metrics), 3.6))
    for k, metric in enumerate(metrics):
        ax = fig.add_subplot(1, len(metrics), k + 1)
        sub = data[data["metric"].astype(str) == metric]
        for arm, grp in sub.groupby(sub["arm"].astype(str), sort=True):
            ax.scatter(grp["metric_value"], grp["mean_rating"], s=14, label=str(arm), alpha=0.8)
        rho = sub["metric_value"].rank().corr(sub["mean_rating"].rank())
        ax.set_title(f"{metric} (Spearman ρ = {rho:.2f})", fontsize=9)
        ax.set_xlabel(metric)
        ax.set_ylabel("mean rating of the stimulus")
        ax.legend(fontsize=7)
    return _png(fig)


def roc_figure(roc: pd.DataFrame) -> bytes:
    """Each reader's empirical ROC curve, one panel per arm."""
    arms = sorted(map(str, roc["arm"].unique()))
    fig = Figure(figsize=(3.6 * len(arms), 3.6))
    for k, arm in enumerate(arms):
        ax = fig.add_subplot(1, len(arms), k + 1)
        sub = roc[roc["arm"].astype(str) == arm]
        for reader, grp in sub.groupby(sub["reader"].astype(str), sort=True):
            g = grp.sort_values(["fpf", "tpf"])
            ax.plot(g["fpf"], g["tpf"], lw=1.2, label=str(reader))
        ax.plot([0, 1], [0, 1], color="#999999", ls=":", lw=0.8)
        ax.set_title(f"arm {arm}", fontsize=9)
        ax.set_xlabel("false-positive fraction")
        ax.set_ylabel("true-positive fraction")
        ax.set_aspect("equal")
        ax.legend(fontsize=6, loc="lower right")
    return _png(fig)


def reliability_figure(
    bins: pd.DataFrame, ece_before: float | None, ece_after: float | None
) -> bytes:
    """Reliability diagram: observed frequency against mean predicted probability."""
    fig = Figure(figsize=(4.6, 4.2))
    ax = fig.add_subplot(1, 1, 1)
    ax.plot([0, 1], [0, 1], color="#999999", ls=":", lw=1, label="perfect calibration")
    sizes = 20 + 180 * bins["count"] / max(float(bins["count"].max()), 1.0)
    ax.plot(bins["mean_predicted"], bins["observed"], color="#2166ac", lw=1)
    ax.scatter(bins["mean_predicted"], bins["observed"], s=sizes, color="#2166ac", label="bins")
    words = []
    if ece_before is not None:
        words.append(f"ECE before {ece_before:.3f}")
    if ece_after is not None:
        words.append(f"after {ece_after:.3f}")
    ax.set_title(", ".join(words) or "reliability diagram", fontsize=9)
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("observed frequency correct")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=7, loc="upper left")
    return _png(fig)


def montage_figure(images: Sequence[tuple[str, bytes]]) -> bytes:
    """Example stimuli in a grid: one row per arm, its examples left to right."""
    by_arm: dict[str, list[bytes]] = {}
    for arm, png in images:
        by_arm.setdefault(str(arm), []).append(png)
    arms = sorted(by_arm)
    cols = max(len(v) for v in by_arm.values())
    fig = Figure(figsize=(2.0 * cols + 0.6, 2.1 * len(arms)))
    for r, arm in enumerate(arms):
        for c in range(cols):
            ax = fig.add_subplot(len(arms), cols, r * cols + c + 1)
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(by_arm[arm]):
                with Image.open(io.BytesIO(by_arm[arm][c])) as im:
                    ax.imshow(np.asarray(im.convert("RGB")))
            else:
                ax.axis("off")
            if c == 0:
                ax.set_ylabel(arm, fontsize=10)
    return _png(fig)


def _finite(v: Any) -> bool:
    return v is not None and isinstance(v, int | float) and math.isfinite(float(v))
