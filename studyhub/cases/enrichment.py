"""Enrichment targets as exact counts, allocated over the strata together with their quotas.

``sampling.enrich.errors: 0.2`` asks for a sample in which one case in five is
misclassified: ``0.2 x n_cases`` of them, rounded to the nearest whole case
(:func:`planned_count`), and one case more or fewer only where the stratum quotas
make that count impossible. ``low_confidence`` works the same way; a share of 0
(the default) sets no target. With the exact stratum quotas this is a small
integer problem: in each stratum, choose how many cases come from each of four
cells (misclassified or not x low-confidence or not), within what the stratum
holds, so that the cells add up to the stratum's quota and the flagged cases add
up to their targets over all strata.

:func:`allocate` solves it exactly: a dynamic programme over the strata keeps
every reachable pair of (misclassified, low-confidence) counts, and a walk back
gives each stratum the counts closest to its share of what remains, in
proportion to the flagged cases it holds (so the sample's errors come from the
strata the pool's errors come from). Within a stratum, which cases fill those
counts is left to the draw (k-center diversity in
:func:`studyhub.cases.sampling.draw_sample`), through :func:`allowed_cells`.
When no allocation comes within one case of a target, :func:`enrichment_problems`
says why: the strata that hold too few (or force too many) flagged cases, the
numbers, and the share that can be met.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pandas as pd

from studyhub.errors import DataError
from studyhub.protocol.schema import Enrichment

__all__ = [
    "FLAGS",
    "Allocation",
    "allocate",
    "allowed_cells",
    "case_cells",
    "case_flags",
    "enrichment_problems",
    "planned_count",
    "planned_counts",
    "stratum_cells",
]

#: The enrichment targets of ``sampling.enrich``, in cell-bit order (errors = 2, low = 1).
FLAGS = ("errors", "low_confidence")

_WHAT = {"errors": "misclassified", "low_confidence": "low-confidence"}


def planned_count(share: float, n_cases: int) -> int:
    """``share x n_cases`` rounded to the nearest whole case, half up (0.2 x 38 = 7.6 -> 8).

    The share is taken as written (its shortest decimal form), so 0.3 x 5 is 1.5
    and rounds to 2, not to 1 as the binary float 0.29999... would.
    """
    exact = Decimal(repr(float(share))) * n_cases
    return int(exact.to_integral_value(rounding=ROUND_HALF_UP))


def planned_counts(enrich: Enrichment, n_cases: int) -> dict[str, int | None]:
    """The planned count of each enrichment target; None where the share is 0 (no target)."""
    shares = {name: float(getattr(enrich, name)) for name in FLAGS}
    return {name: planned_count(s, n_cases) if s > 0 else None for name, s in shares.items()}


def case_flags(pool: pd.DataFrame, enrich: Enrichment) -> dict[str, np.ndarray]:
    """Which eligible cases are misclassified, and which are low-confidence."""
    return {
        "errors": ~pool["correct"].astype(bool).to_numpy(),
        "low_confidence": (pool["confidence"] < enrich.low_confidence_below).to_numpy(),
    }


def case_cells(flags: dict[str, np.ndarray], planned: dict[str, int | None]) -> np.ndarray:
    """Each case's cell 0-3: 2 x misclassified + low-confidence, counting targeted flags only."""
    bits = [
        flags[name].astype(int) if planned[name] is not None else np.zeros_like(flags[name], int)
        for name in FLAGS
    ]
    return np.asarray(2 * bits[0] + bits[1], dtype=int)


def _fits(avail: np.ndarray, q: np.ndarray, e: np.ndarray, low: np.ndarray) -> np.ndarray:
    """Whether ``q`` cases, ``e`` misclassified and ``low`` low-confidence, can come from ``avail``.

    ``avail[..., c]`` counts the cases of cell ``c`` (0 neither, 1 low-confidence
    only, 2 misclassified only, 3 both). A choice exists when the number ``t`` of
    cases taken from cell 3 has room between its lower and upper bounds (every
    other cell's count then follows from ``t``); broadcasts over leading axes.
    """
    a0, a1, a2, a3 = (avail[..., c] for c in range(4))
    lo = np.maximum(np.maximum(0, e - a2), np.maximum(low - a1, e + low - q))
    hi = np.minimum(np.minimum(a3, e), np.minimum(low, a0 + e + low - q))
    return np.asarray(lo <= hi)


def allowed_cells(avail: np.ndarray, q: np.ndarray, e: np.ndarray, low: np.ndarray) -> np.ndarray:
    """``(S, 4)``: may the next case of stratum ``s`` come from cell ``c``?

    It may when the cell has a case left and, with that case taken, the rest of
    the stratum's quota and flag counts can still be filled.
    """
    out = np.zeros(avail.shape, dtype=bool)
    for c in range(4):
        taken = avail.copy()
        taken[:, c] -= 1
        out[:, c] = (avail[:, c] > 0) & (q > 0) & _fits(taken, q - 1, e - (c >> 1), low - (c & 1))
    return out


@dataclass(frozen=True)
class Allocation:
    """How many flagged cases each stratum gives, and what that meets.

    Attributes
    ----------
    planned : dict
        Target name -> planned count (None: no target).
    achieved : dict
        Target name -> count the allocation draws (targeted names only).
    by_stratum : dict
        Stratum -> ``(errors, low_confidence)`` counts to draw (0 for an untargeted flag).
    notes : list of str
        A target met one case away from its planned count, and why.
    """

    planned: dict[str, int | None]
    achieved: dict[str, int]
    by_stratum: dict[str, tuple[int, int]]
    notes: list[str] = field(default_factory=list)


def stratum_cells(
    strata: pd.Series, cells: np.ndarray, names: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """``(S, 4)`` cell counts of the strata ``names``, and each case's stratum index (-1: none)."""
    where = {s: i for i, s in enumerate(names)}
    index = np.array([where.get(s, -1) for s in strata.astype(str)], dtype=int)
    avail = np.zeros((len(names), 4), dtype=int)
    inside = index >= 0
    np.add.at(avail, (index[inside], cells[inside]), 1)
    return avail, index


def _stages(avail: np.ndarray, q: np.ndarray, size: tuple[int, int]) -> list[np.ndarray]:
    """Reachable (errors, low) totals after each stratum, on a grid of ``size``."""
    e = np.arange(size[0])[:, None]
    low = np.arange(size[1])[None, :]
    reach = np.zeros(size, dtype=bool)
    reach[0, 0] = True
    stages = [reach]
    full = (2 * size[0] - 1, 2 * size[1] - 1)  # the whole convolution, so nothing wraps
    for a, quota in zip(avail, q, strict=True):
        options = np.fft.rfft2(_fits(a, quota, e, low).astype(float), full)
        ways = np.fft.irfft2(np.fft.rfft2(reach.astype(float), full) * options, full)
        reach = ways[: size[0], : size[1]] > 0.5  # counts of ways, each at most the grid's size
        stages.append(reach)
    return stages


def _walk_back(
    stages: list[np.ndarray], avail: np.ndarray, q: np.ndarray, end: tuple[int, int]
) -> list[tuple[int, int]]:
    """Per-stratum (errors, low) counts reaching ``end``, each near its proportional share."""
    flagged = np.stack([avail[:, 2] + avail[:, 3], avail[:, 1] + avail[:, 3]], axis=1)
    rest = np.array(end, dtype=int)
    out: list[tuple[int, int]] = []
    for k in range(len(q) - 1, -1, -1):
        e = np.arange(rest[0] + 1)[:, None]
        low = np.arange(rest[1] + 1)[None, :]
        before = stages[k][rest[0] :: -1, rest[1] :: -1]  # reachable with the rest
        ok = _fits(avail[k], q[k], e, low) & before
        held = flagged[: k + 1].sum(axis=0)
        ideal = np.where(held > 0, rest * flagged[k] / np.maximum(held, 1), 0.0)
        cost = np.where(ok, (e - ideal[0]) ** 2 + (low - ideal[1]) ** 2, np.inf)
        i, j = np.unravel_index(int(np.argmin(cost)), cost.shape)
        out.append((int(i), int(j)))
        rest = rest - (int(i), int(j))
    return out[::-1]


def _share(count: int, n: int) -> str:
    """A share whose planned count out of ``n`` is ``count``: exact if 4 decimals hold it."""
    exact = Decimal(count) / Decimal(n)
    if exact == exact.quantize(Decimal("0.0001")):
        return format(exact.normalize(), "f")
    for digits in range(2, 8):
        share = round(count / n, digits)
        if planned_count(share, n) == count:
            return f"{share:.{digits}f}".rstrip("0").rstrip(".") or "0"
    return repr(count / n)  # pragma: no cover - 7 digits always suffice for n <= 1e6


def _cases(count: int, what: str) -> str:
    return f"{count} {what} case{'' if count == 1 else 's'}"


def _listed(items: list[str], limit: int = 6) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


class _Problem:
    """Messages for targets the quotas and the pool cannot meet within one case."""

    def __init__(
        self,
        names: list[str],
        avail: np.ndarray,
        q: np.ndarray,
        enrich: Enrichment,
        planned: dict[str, int | None],
        stratified: bool,
    ) -> None:
        self.names, self.avail, self.q = names, avail, q
        self.enrich, self.planned, self.stratified = enrich, planned, stratified
        self.n = int(q.sum())

    def target(self, name: str) -> str:
        count = self.planned[name]
        return (
            f"sampling.enrich.{name} is {getattr(self.enrich, name):g}, i.e. {count} of the "
            f"{self.n} cases (within one)"
        )

    def flagged(self, bit: int) -> np.ndarray:
        cells = [c for c in range(4) if c & bit]
        return np.asarray(self.avail[:, cells].sum(axis=1))

    def single(self, name: str) -> str | None:
        """Why ``name`` alone cannot be met within one case, or None when it can."""
        target = self.planned[name]
        if target is None:
            return None
        f = self.flagged(2 if name == "errors" else 1)
        u = self.avail.sum(axis=1) - f
        most = int(np.minimum(self.q, f).sum())
        least = int(np.maximum(0, self.q - u).sum())
        if most < target - 1:
            return self._too_few(name, f, most)
        if least > target + 1:
            return self._too_many(name, u, least)
        return None

    def _too_few(self, name: str, f: np.ndarray, most: int) -> str:
        what = _WHAT[name]
        if not self.stratified:
            why = f"the eligible pool holds only {int(f.sum())}"
            fix = f"add {what} cases to the pool (widen sampling.eligibility)"
        else:
            short = [
                f"stratum {s!r} holds {_cases(int(f[k]), what)} for its quota of {int(self.q[k])}"
                for k, s in enumerate(self.names)
                if f[k] < self.q[k]
            ]
            more = [
                f"{s!r} holds {int(f[k])} for a quota of {int(self.q[k])}"
                for k, s in enumerate(self.names)
                if f[k] > self.q[k]
            ]
            why = f"under the stratum quotas, {_listed(short)}"
            if len(short) < len(self.names):
                why += " (every other stratum can fill its whole quota with them)"
            fix = (
                f"raise the quotas of the strata that hold more ({_listed(more)}) or "
                if more
                else ""
            )
            fix += f"add {what} cases to the pool"
        return (
            f"{self.target(name)}, but at most {most} {what} cases can be drawn: {why}; "
            f"lower sampling.enrich.{name} to at most {_share(most, self.n)} "
            f"({most} of {self.n}), or {fix}"
        )

    def _too_many(self, name: str, u: np.ndarray, least: int) -> str:
        what = _WHAT[name]
        other = (
            "correctly classified"
            if name == "errors"
            else f"confident (calibrated confidence {self.enrich.low_confidence_below:g} or more)"
        )
        if not self.stratified:
            why = f"the eligible pool holds only {int(u.sum())} {other} cases"
            fix = f"add {other} cases to the pool"
        else:
            forced = [
                f"stratum {s!r} holds only {_cases(int(u[k]), other)} for its quota of "
                f"{int(self.q[k])}"
                for k, s in enumerate(self.names)
                if u[k] < self.q[k]
            ]
            why = _listed(forced)
            fix = "lower the quotas of those strata"
        return (
            f"{self.target(name)}, but at least {least} {what} cases must be drawn: {why}; "
            f"raise sampling.enrich.{name} to at least {_share(least, self.n)} "
            f"({least} of {self.n}), or {fix}"
        )

    def joint(self) -> str:
        """Why both targets, each possible alone, cannot be met together."""
        te, tl = (int(self.planned[name] or 0) for name in FLAGS)
        size = (int(self.flagged(2).sum()) + 1, int(self.flagged(1).sum()) + 1)
        reach = _stages(self.avail, self.q, size)[-1]

        def nearest(values: np.ndarray, target: int) -> int:
            return int(values[np.argmin(np.abs(values - target))])  # first of a tie: the lower

        lows = np.flatnonzero(reach[min(te, size[0] - 1)])
        errs = np.flatnonzero(reach[:, min(tl, size[1] - 1)])
        c = self.avail.sum(axis=0)
        where = "eligible cases in the strata with a quota" if self.stratified else "eligible cases"
        fixes = []
        if lows.size:
            low = nearest(lows, tl)
            fixes.append(
                f"sampling.enrich.low_confidence to {_share(low, self.n)} ({low} of {self.n})"
            )
            with_errors = f"with {te} misclassified cases the nearest low-confidence count is {low}"
        else:  # pragma: no cover - te alone is feasible, so some low count goes with it
            with_errors = f"no draw holds {te} misclassified cases"
        if errs.size:
            err = nearest(errs, te)
            fixes.append(f"sampling.enrich.errors to {_share(err, self.n)} ({err} of {self.n})")
        shares = [f"{getattr(self.enrich, name):g}" for name in FLAGS]
        quotas = " under the stratum quotas" if self.stratified else ""
        return (
            f"sampling.enrich.errors {shares[0]} ({te} of the {self.n} cases) and "
            f"sampling.enrich.low_confidence {shares[1]} ({tl} of {self.n}) cannot be met "
            f"together, each within one case{quotas}: "
            f"of the {int(c.sum())} {where}, {int(c[3])} are both misclassified and "
            f"low-confidence, {int(c[2])} only misclassified, {int(c[1])} only low-confidence "
            f"and {int(c[0])} neither; {with_errors}; set "
            + " or ".join(fixes)
            + (", or change the quotas" if self.stratified else "")
        )


def _solve(
    strata: pd.Series,
    flags: dict[str, np.ndarray],
    quotas: dict[str, int],
    enrich: Enrichment,
    *,
    stratified: bool,
) -> Allocation | list[str]:
    n = sum(quotas.values())
    planned = planned_counts(enrich, n)
    names = sorted(quotas)
    avail, _index = stratum_cells(strata, case_cells(flags, planned), names)
    q = np.array([quotas[s] for s in names], dtype=int)
    targets = [planned[name] for name in FLAGS]
    size = (
        (targets[0] + 2) if targets[0] is not None else 1,
        (targets[1] + 2) if targets[1] is not None else 1,
    )
    stages = _stages(avail, q, size)
    want = np.array([t or 0 for t in targets])
    ends = [
        (abs(i - want[0]) + abs(j - want[1]), i, j)
        for i, j in zip(*np.nonzero(stages[-1]), strict=True)
        if abs(i - want[0]) <= 1 and abs(j - want[1]) <= 1
    ]
    if not ends:
        problem = _Problem(names, avail, q, enrich, planned, stratified)
        found = [p for p in (problem.single(name) for name in FLAGS) if p is not None]
        return found or [problem.joint()]
    _cost, end_e, end_l = min(ends)
    counts = _walk_back(stages, avail, q, (int(end_e), int(end_l)))
    totals = dict(zip(FLAGS, (int(end_e), int(end_l)), strict=True))
    achieved = {name: totals[name] for name in FLAGS if planned[name] is not None}
    notes = []
    where = "the eligible pool" + (" under the stratum quotas" if stratified else "")
    both = " that also meets the other enrichment target" if len(achieved) == 2 else ""
    for name, got in achieved.items():
        target = planned[name]
        if got != target:
            share = getattr(enrich, name)
            notes.append(
                f"{_WHAT[name]} cases: {got} drawn for the planned {target} ({share:g} x {n}): "
                f"no draw from {where}{both} comes closer (the plan allows one case either way)"
            )
    return Allocation(
        planned=planned,
        achieved=achieved,
        by_stratum={s: c for s, c in zip(names, counts, strict=True)},
        notes=notes,
    )


def allocate(
    strata: pd.Series,
    flags: dict[str, np.ndarray],
    quotas: dict[str, int],
    enrich: Enrichment,
    *,
    stratified: bool = True,
) -> Allocation:
    """Spread the enrichment targets over the strata, keeping every quota exact.

    Parameters
    ----------
    strata : pandas.Series
        Each eligible case's stratum (:func:`~studyhub.cases.sampling.strata_keys`).
    flags : dict
        :func:`case_flags` of the same cases.
    quotas : dict
        Stratum -> exact count; they add up to ``n_cases``.
    enrich : Enrichment
        The protocol's targets.
    stratified : bool
        Whether the quotas come from ``sampling.stratify`` (the messages then name strata).

    Returns
    -------
    Allocation
        Planned and achieved counts and each stratum's share of them. Each achieved
        count is the planned one, or one away where no allocation meets both
        targets exactly (said in :attr:`Allocation.notes`).

    Raises
    ------
    DataError
        When no allocation comes within one case of every target, naming the
        strata, the counts and the share that can be met (the first of
        :func:`enrichment_problems`).
    """
    found = _solve(strata, flags, quotas, enrich, stratified=stratified)
    if isinstance(found, list):
        raise DataError(found[0])
    return found


def enrichment_problems(
    strata: pd.Series,
    flags: dict[str, np.ndarray],
    quotas: dict[str, int],
    enrich: Enrichment,
    *,
    stratified: bool = True,
) -> list[str]:
    """Why :func:`allocate` would refuse (empty: every target can be met within one case)."""
    found = _solve(strata, flags, quotas, enrich, stratified=stratified)
    return found if isinstance(found, list) else []
