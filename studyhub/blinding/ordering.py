"""Random item order with a minimum gap between items of the same case.

The problem is the "task scheduler" problem without idle slots: ``n`` items,
each belonging to a case, must be put in a sequence such that two items of the
same case have at least ``min_gap`` other items between them (their positions
differ by at least ``min_gap + 1``). With ``f`` the largest number of items of
one case and ``c`` the number of cases that have ``f`` items, such an order
exists if and only if

    n >= (f - 1) * (min_gap + 1) + c

(the ``f`` items of a busiest case need ``f - 1`` full gaps, and the last round
holds one item of each busiest case). :func:`order_items` checks this bound
first and explains the shortfall when it fails; when it holds, it returns an
order that keeps the gap:

1. up to :data:`ATTEMPTS` randomised greedy passes: at each position an item is
   drawn uniformly from the cases whose cooldown has passed (and whose next item
   is released, see ``release``), except that when the bound becomes tight only
   the busiest cases may be drawn;
2. if every randomised pass fails, the deterministic greedy that always takes the
   eligible case with the most items left (random tie-breaks). This greedy is
   the textbook optimal schedule: whenever the bound holds it never needs an idle
   slot, so it always succeeds when there is no ``prefix``; ``release``
   preferences are dropped in this fallback.

Items of one case keep their input order (so a repeat listed after its original
is served after it).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence

import numpy as np

from studyhub.errors import InputError

__all__ = ["ATTEMPTS", "GapImpossibleError", "min_items_needed", "observed_min_gap", "order_items"]

#: Randomised passes before the deterministic fallback.
ATTEMPTS = 200


class GapImpossibleError(InputError):
    """No order of the given items keeps the minimum gap."""


def min_items_needed(cases: Sequence[Hashable], min_gap: int) -> int:
    """The fewest items a sequence needs so that ``cases`` can keep ``min_gap``.

    Parameters
    ----------
    cases
        The case of each item.
    min_gap
        Items required between two items of the same case.

    Returns
    -------
    int
        ``(f - 1) * (min_gap + 1) + c`` where ``f`` is the largest count of one
        case and ``c`` the number of cases with that count (0 for no items).
    """
    if not cases:
        return 0
    counts = Counter(cases)
    f = max(counts.values())
    c = sum(1 for v in counts.values() if v == f)
    return (f - 1) * (min_gap + 1) + c


def observed_min_gap(cases: Sequence[Hashable]) -> int | None:
    """The fewest items between two items of the same case, or None when all differ."""
    last: dict[Hashable, int] = {}
    best: int | None = None
    for pos, case in enumerate(cases):
        if case in last:
            gap = pos - last[case] - 1
            best = gap if best is None else min(best, gap)
        last[case] = pos
    return best


def order_items(
    cases: Sequence[Hashable],
    *,
    min_gap: int,
    rng: np.random.Generator,
    release: Sequence[int] | None = None,
    prefix: Sequence[Hashable] = (),
    label: str = "the session",
) -> list[int]:
    """A random order of ``cases`` (as indices) keeping ``min_gap`` between same-case items.

    Parameters
    ----------
    cases
        The case of each item; items of one case keep their relative order.
    min_gap
        Items required between two items of the same case.
    rng
        The random generator (seeded from the protocol seed by the caller).
    release
        Optional earliest position of each item (e.g. repeats placed in the
        second half of a session); a preference the fallback may drop.
    prefix
        Cases of items already served just before this sequence (training
        items): their gap counts too.
    label
        What the sequence is, for the error message.

    Returns
    -------
    list of int
        A permutation of ``range(len(cases))``.

    Raises
    ------
    GapImpossibleError
        When no order can keep the gap, with the numbers and the fixes.
    """
    n = len(cases)
    need = min_items_needed(cases, min_gap)
    if need > n:
        counts = Counter(cases)
        f = max(counts.values())
        raise GapImpossibleError(
            f"{label} has {n} items and one case appears {f} times in it; reading.min_gap "
            f"{min_gap} needs at least {need} items to keep {min_gap} other items between "
            "them; lower reading.min_gap, raise reading.sessions (so a case's items spread "
            "over more sessions), or lower catch_rate/repeat_rate"
        )
    rel = list(release) if release is not None else [0] * n
    for _ in range(ATTEMPTS):
        order = _attempt(cases, min_gap, rng, rel, prefix, random_pick=True)
        if order is not None:
            return order
    order = _attempt(cases, min_gap, rng, [0] * n, prefix, random_pick=False)
    if order is None:
        raise GapImpossibleError(
            f"no order of {label} keeps reading.min_gap {min_gap} after the "
            f"{len(prefix)} training items; lower reading.min_gap or training_items"
        )
    return order


def _attempt(
    cases: Sequence[Hashable],
    min_gap: int,
    rng: np.random.Generator,
    release: list[int],
    prefix: Sequence[Hashable],
    *,
    random_pick: bool,
) -> list[int] | None:
    queues: dict[Hashable, list[int]] = {}
    for i, case in enumerate(cases):
        queues.setdefault(case, []).append(i)
    keys = list(queues)
    tiebreak = {key: float(v) for key, v in zip(keys, rng.random(len(keys)), strict=True)}
    last: dict[Hashable, int] = {}
    for pos, case in enumerate(prefix):
        last[case] = pos - len(prefix)
    n = len(cases)
    order: list[int] = []
    for pos in range(n):
        eligible = [
            key
            for key in keys
            if queues[key]
            and pos - last.get(key, -(10**9)) > min_gap
            and release[queues[key][0]] <= pos
        ]
        if not eligible:
            return None
        if random_pick:
            left = [cases[i] for k in keys for i in queues[k]]
            tight = min_items_needed(left, min_gap) >= n - pos
            if tight:
                top = max(len(queues[k]) for k in eligible)
                eligible = [k for k in eligible if len(queues[k]) == top]
            weights = np.array([len(queues[k]) for k in eligible], dtype=float)
            key = eligible[int(rng.choice(len(eligible), p=weights / weights.sum()))]
        else:
            key = max(eligible, key=lambda k: (len(queues[k]), tiebreak[k]))
        order.append(queues[key].pop(0))
        last[key] = pos
    return order
