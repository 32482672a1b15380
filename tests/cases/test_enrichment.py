"""Enrichment targets as exact counts with the stratum quotas: planned counts, the allocation
(checked against brute force on small pools), and messages that name strata, counts and fixes."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from studyhub.cases.enrichment import (
    allocate,
    allowed_cells,
    case_flags,
    enrichment_problems,
    planned_count,
    planned_counts,
)
from studyhub.errors import DataError
from studyhub.protocol.schema import Enrichment

# cell codes: (misclassified, low-confidence)
BOTH, ERR, LOW, NEITHER = (True, True), (True, False), (False, True), (False, False)


def _pool(spec: dict[str, dict[tuple[bool, bool], int]]) -> pd.DataFrame:
    """Cases by stratum ('label') and cell: {stratum: {(error, low): count}}."""
    rows = []
    for stratum, cells in spec.items():
        for (error, low), count in cells.items():
            rows += [
                {"label": stratum, "correct": not error, "confidence": 0.5 if low else 0.9}
            ] * count
    return pd.DataFrame(rows)


def _enrich(errors: float = 0.0, low: float = 0.0) -> Enrichment:
    return Enrichment(errors=errors, low_confidence=low, low_confidence_below=0.7)


def _problems(
    pool: pd.DataFrame, quotas: dict[str, int], enrich: Enrichment, *, stratified: bool = True
) -> list[str]:
    flags = case_flags(pool, enrich)
    return enrichment_problems(pool["label"], flags, quotas, enrich, stratified=stratified)


@pytest.mark.parametrize(
    ("share", "n", "count"),
    [
        (0.2, 40, 8),
        (0.1, 40, 4),
        (0.3, 5, 2),  # 1.5 rounds half up; the binary float 0.3 x 5 is 1.4999999999999998
        (0.1, 35, 4),  # 3.5 -> 4
        (0.2, 38, 8),  # 7.6 -> 8
        (0.125, 36, 5),  # 4.5 -> 5
        (0.01, 40, 0),  # 0.4 -> 0: a target of no case
        (1.0, 7, 7),
    ],
)
def test_planned_count_rounds_the_share_as_written_half_up(
    share: float, n: int, count: int
) -> None:
    assert planned_count(share, n) == count


def test_a_share_of_zero_sets_no_target() -> None:
    assert planned_counts(_enrich(errors=0.2), 40) == {"errors": 8, "low_confidence": None}
    assert planned_counts(_enrich(), 40) == {"errors": None, "low_confidence": None}


def test_counts_are_spread_in_proportion_to_the_flagged_cases_each_stratum_holds() -> None:
    # errors held 12 : 6 : 0 -> a target of 6 gives 4 : 2 : 0
    pool = _pool(
        {"a": {ERR: 12, NEITHER: 20}, "b": {ERR: 6, NEITHER: 20}, "c": {NEITHER: 20}},
    )
    enrich = _enrich(errors=0.2)
    got = allocate(pool["label"], case_flags(pool, enrich), {"a": 10, "b": 10, "c": 10}, enrich)
    assert got.planned == {"errors": 6, "low_confidence": None}
    assert got.achieved == {"errors": 6}
    assert got.by_stratum == {"a": (4, 0), "b": (2, 0), "c": (0, 0)}
    assert got.notes == []


def test_one_case_off_only_where_the_quotas_leave_no_exact_count_and_said_so() -> None:
    # stratum a gives (0, 0) or (1, 1); stratum b gives (1, 0) or (0, 1): the totals
    # 1 misclassified and 1 low-confidence cannot both be met, each within one case can
    pool = _pool({"a": {BOTH: 1, NEITHER: 1}, "b": {ERR: 1, LOW: 1}})
    enrich = _enrich(errors=0.5, low=0.5)
    got = allocate(pool["label"], case_flags(pool, enrich), {"a": 1, "b": 1}, enrich)
    assert got.planned == {"errors": 1, "low_confidence": 1}
    assert got.achieved == {"errors": 0, "low_confidence": 1}
    assert got.notes == [
        "misclassified cases: 0 drawn for the planned 1 (0.5 x 2): no draw from the eligible "
        "pool under the stratum quotas that also meets the other enrichment target comes closer "
        "(the plan allows one case either way)"
    ]


def test_too_few_in_the_strata_names_each_stratum_its_counts_and_the_fix() -> None:
    pool = _pool(
        {
            "crack": {ERR: 2, NEITHER: 40},
            "none": {ERR: 9, NEITHER: 30},
            "pit": {ERR: 1, NEITHER: 40},
        }
    )
    quotas = {"crack": 18, "none": 2, "pit": 10}
    enrich = _enrich(errors=0.3)
    expected = (
        "sampling.enrich.errors is 0.3, i.e. 9 of the 30 cases (within one), but at most 5 "
        "misclassified cases can be drawn: under the stratum quotas, stratum 'crack' holds 2 "
        "misclassified cases for its quota of 18, stratum 'pit' holds 1 misclassified case for "
        "its quota of 10 (every other stratum can fill its whole quota with them); lower "
        "sampling.enrich.errors to at most 0.17 (5 of 30), or raise the quotas of the strata "
        "that hold more ('none' holds 9 for a quota of 2) or add misclassified cases to the pool"
    )
    assert _problems(pool, quotas, enrich) == [expected]
    with pytest.raises(DataError) as info:
        allocate(pool["label"], case_flags(pool, enrich), quotas, enrich)
    assert str(info.value) == expected
    # the share it offers is met
    assert _problems(pool, quotas, _enrich(errors=0.17)) == []


def test_too_few_in_an_unstratified_pool() -> None:
    pool = _pool({"all": {ERR: 3, NEITHER: 100}})
    assert _problems(pool, {"all": 40}, _enrich(errors=0.5), stratified=False) == [
        "sampling.enrich.errors is 0.5, i.e. 20 of the 40 cases (within one), but at most 3 "
        "misclassified cases can be drawn: the eligible pool holds only 3; lower "
        "sampling.enrich.errors to at most 0.075 (3 of 40), or add misclassified cases to the "
        "pool (widen sampling.eligibility)"
    ]
    # 0.1 x 40 = 4, and 3 is within one case of it: drawn, and the note says so
    enrich = _enrich(errors=0.1)
    assert _problems(pool, {"all": 40}, enrich, stratified=False) == []
    got = allocate(pool["label"], case_flags(pool, enrich), {"all": 40}, enrich, stratified=False)
    assert got.achieved == {"errors": 3}
    assert got.notes == [
        "misclassified cases: 3 drawn for the planned 4 (0.1 x 40): no draw from the eligible "
        "pool comes closer (the plan allows one case either way)"
    ]


def test_quotas_that_force_too_many_flagged_cases_are_named() -> None:
    pool = _pool({"pit": {ERR: 20}, "crack": {NEITHER: 40, ERR: 5}})
    assert _problems(pool, {"pit": 10, "crack": 30}, _enrich(errors=0.1)) == [
        "sampling.enrich.errors is 0.1, i.e. 4 of the 40 cases (within one), but at least 10 "
        "misclassified cases must be drawn: stratum 'pit' holds only 0 correctly classified "
        "cases for its quota of 10; raise sampling.enrich.errors to at least 0.25 (10 of 40), "
        "or lower the quotas of those strata"
    ]
    low = _pool({"all": {LOW: 30, NEITHER: 5}})
    assert _problems(low, {"all": 20}, _enrich(low=0.2), stratified=False) == [
        "sampling.enrich.low_confidence is 0.2, i.e. 4 of the 20 cases (within one), but at "
        "least 15 low-confidence cases must be drawn: the eligible pool holds only 5 confident "
        "(calibrated confidence 0.7 or more) cases; raise sampling.enrich.low_confidence to at "
        "least 0.75 (15 of 20), or add confident (calibrated confidence 0.7 or more) cases to "
        "the pool"
    ]


def test_targets_possible_alone_but_not_together_say_why_and_what_can_be_met() -> None:
    # every misclassified case is low-confidence: 5 errors bring 5 low-confidence cases
    pool = _pool({"all": {BOTH: 10, NEITHER: 30}})
    assert _problems(pool, {"all": 20}, _enrich(errors=0.25, low=0.05), stratified=False) == [
        "sampling.enrich.errors 0.25 (5 of the 20 cases) and sampling.enrich.low_confidence "
        "0.05 (1 of 20) cannot be met together, each within one case: of the 40 eligible "
        "cases, 10 are both misclassified and low-confidence, 0 only misclassified, 0 only "
        "low-confidence and 30 neither; with 5 misclassified cases the nearest low-confidence "
        "count is 5; set sampling.enrich.low_confidence to 0.25 (5 of 20) or "
        "sampling.enrich.errors to 0.05 (1 of 20)"
    ]
    assert _problems(pool, {"all": 20}, _enrich(errors=0.25, low=0.25), stratified=False) == []


def test_allowed_cells_keep_the_rest_of_the_stratum_reachable() -> None:
    # quota 2 with 1 misclassified and 1 low-confidence to draw, from 1 'both', 1 'error',
    # 1 'low' and 5 'neither' cases: a 'neither' case would leave 1 slot for 2 flags unless
    # the 'both' case follows, so every cell is allowed; with the 'both' case gone, a
    # 'neither' case is not (1 slot left for 1 error + 1 low from different cases)
    avail = np.array([[5, 1, 1, 1]])
    q, e, low = np.array([2]), np.array([1]), np.array([1])
    assert allowed_cells(avail, q, e, low).tolist() == [[True, True, True, True]]
    assert allowed_cells(np.array([[5, 1, 1, 0]]), q, e, low).tolist() == [
        [False, True, True, False]
    ]
    assert allowed_cells(avail, np.array([0]), np.array([0]), np.array([0])).tolist() == [
        [False] * 4
    ]


def _brute_force_totals(
    cells: list[list[tuple[bool, bool]]], quotas: list[int]
) -> set[tuple[int, int]]:
    """Every (errors, low) total of every choice of quota cases per stratum."""
    per_stratum = []
    for stratum, q in zip(cells, quotas, strict=True):
        per_stratum.append(
            {
                (sum(c[0] for c in pick), sum(c[1] for c in pick))
                for pick in itertools.combinations(stratum, q)
            }
        )
    totals = {(0, 0)}
    for options in per_stratum:
        totals = {(a + c, b + d) for a, b in totals for c, d in options}
    return totals


def test_allocation_agrees_with_brute_force_on_small_pools() -> None:
    rng = np.random.default_rng(11)
    codes = [NEITHER, LOW, ERR, BOTH]
    checked = refused = off_by_one = 0
    for _ in range(60):
        n_strata = int(rng.integers(1, 4))
        cells = [
            [codes[int(c)] for c in rng.integers(0, 4, size=int(rng.integers(1, 6)))]
            for _ in range(n_strata)
        ]
        quotas = [int(rng.integers(1, len(s) + 1)) for s in cells]
        n = sum(quotas)
        reachable = _brute_force_totals(cells, quotas)
        names = [f"s{k}" for k in range(n_strata)]
        spec: dict[str, dict[tuple[bool, bool], int]] = {}
        for name, stratum in zip(names, cells, strict=True):
            for code in stratum:
                spec.setdefault(name, {}).setdefault(code, 0)
                spec[name][code] += 1
        pool = _pool(spec)
        quota_of = dict(zip(names, quotas, strict=True))
        for te, tl in itertools.product(range(n + 1), repeat=2):
            enrich = _enrich(errors=te / n, low=tl / n)
            if te == 0 or tl == 0:
                continue  # a share of 0 is no target; tested above
            near = {(a, b) for a, b in reachable if abs(a - te) <= 1 and abs(b - tl) <= 1}
            flags = case_flags(pool, enrich)
            if not near:
                assert enrichment_problems(pool["label"], flags, quota_of, enrich), (cells, te, tl)
                refused += 1
                continue
            got = allocate(pool["label"], flags, quota_of, enrich)
            total = (got.achieved["errors"], got.achieved["low_confidence"])
            assert total in near
            if (te, tl) in reachable:
                assert total == (te, tl)
            else:
                off_by_one += 1
                assert got.notes
            # the per-stratum counts add up and each stratum can give its own
            assert tuple(np.sum(list(got.by_stratum.values()), axis=0)) == total
            for k, name in enumerate(names):
                own = _brute_force_totals([cells[k]], [quotas[k]])
                assert got.by_stratum[name] in own
            checked += 1
    assert checked > 300 and refused > 100 and off_by_one > 5
