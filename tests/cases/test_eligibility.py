"""Tests of studyhub/cases/eligibility.py: exclusions with reasons, for case-flow counts."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from studyhub.cases import CaseRecord, MetadataValue, apply_eligibility
from studyhub.errors import DataError, InputError
from studyhub.protocol.schema import Eligibility


def _case(
    key: str,
    label: str = "crack",
    *,
    split: str | None = "test",
    mask: bool = True,
    **metadata: MetadataValue,
) -> CaseRecord:
    return CaseRecord(
        case_key=key,
        source=f"images/{key}.png",
        path=Path(f"/data/images/{key}.png"),
        image_sha256="0" * 64,
        label=label,
        mask_path=Path(f"/data/masks/{key}.png") if mask else None,
        split=split,
        metadata={"lighting": "bright", "stamp": True, "line_no": 2, **metadata},
        row=2,
    )


CASES = [
    _case("ok1"),
    _case("train", split="train"),
    _case("none", label="none"),
    _case("nomask", mask=False),
    _case("dim", lighting="dim"),
    _case("ok2", label="pit", line_no=3),
    _case("nostamp", stamp=False),
]
RULES = Eligibility(
    labels=["crack", "pit"],
    require_mask=True,
    metadata={"lighting": ["bright"], "stamp": ["true"]},
)


def test_exclusions_carry_a_human_reason() -> None:
    eligible, excluded = apply_eligibility(CASES, RULES, pool_split="test")

    assert [r.case_key for r in eligible] == ["ok1", "ok2"]
    assert [(r.case_key, reason) for r, reason in excluded] == [
        ("train", "split 'train' is not the pool split 'test'"),
        ("none", "label 'none' not eligible"),
        ("nomask", "no mask"),
        ("dim", "lighting 'dim' not in [bright]"),
        ("nostamp", "stamp 'false' not in [true]"),
    ]


def test_one_reason_per_case_in_fixed_order() -> None:
    # Fails split, label, mask and lighting: counted once, under the split.
    worst = _case("worst", label="none", split="train", mask=False, lighting="dim")
    _, excluded = apply_eligibility([worst, *CASES], RULES, pool_split="test")
    assert excluded[0] == (worst, "split 'train' is not the pool split 'test'")
    counts = Counter(reason for _, reason in excluded)
    assert sum(counts.values()) == 6  # each excluded case counted exactly once


def test_no_pool_split_and_default_rules_keep_everything() -> None:
    eligible, excluded = apply_eligibility(CASES, Eligibility(), pool_split=None)
    assert eligible == CASES and excluded == []


def test_missing_values_and_typed_matching() -> None:
    cases = [
        _case("a", line_no=2),
        _case("b", line_no=3),
        _case("c", split=None),
    ]
    cases[0].metadata.pop("lighting")
    rules = Eligibility(metadata={"line_no": ["2.0", "x"], "lighting": ["bright", "dim"]})
    eligible, excluded = apply_eligibility(cases, rules, pool_split="test")
    assert eligible == []
    assert [reason for _, reason in excluded] == [
        "lighting missing, not in [bright, dim]",
        "line_no '3' not in [2.0, x]",
        "split missing, not the pool split 'test'",
    ]
    eligible, _ = apply_eligibility(cases, rules, pool_split=None)
    assert [r.case_key for r in eligible] == ["c"]


def test_criteria_naming_nothing_in_the_data_are_refused() -> None:
    with pytest.raises(DataError) as err:
        apply_eligibility(CASES, Eligibility(), pool_split="tset")
    assert "sampling.pool_split is 'tset' but the data's splits are ['test', 'train']" in str(
        err.value
    )
    assert "or to null to draw from every case" in str(err.value)

    no_splits = [_case("a", split=None)]
    with pytest.raises(DataError, match="the data has no split column"):
        apply_eligibility(no_splits, Eligibility(), pool_split="test")

    with pytest.raises(DataError) as err:
        apply_eligibility(CASES, Eligibility(metadata={"lightning": ["bright"]}), pool_split=None)
    assert "names column(s) ['lightning'] that no case has" in str(err.value)
    assert "['lighting', 'line_no', 'stamp']" in str(err.value)

    assert apply_eligibility([], RULES, pool_split="test") == ([], [])


def test_wrong_argument_types() -> None:
    with pytest.raises(InputError, match="pass the CaseRecord list from read_cases"):
        apply_eligibility(["a.png"], RULES, pool_split=None)  # type: ignore[list-item]
    with pytest.raises(InputError, match=r"pass the protocol's sampling\.eligibility"):
        apply_eligibility(CASES, {"labels": ["crack"]}, pool_split=None)  # type: ignore[arg-type]


def test_eligibility_problems_lists_both_unknown_names_at_once() -> None:
    from studyhub.cases.eligibility import eligibility_problems

    rules = Eligibility(metadata={"shift": ["night"]})
    problems = eligibility_problems(CASES, rules, pool_split="validation")
    assert len(problems) == 2
    assert (
        "sampling.pool_split is 'validation' but the data's splits are ['test', 'train']"
        in (problems[0])
    )
    assert "names column(s) ['shift'] that no case has" in problems[1]
    with pytest.raises(DataError) as info:
        apply_eligibility(CASES, rules, pool_split="validation")
    assert str(info.value) == problems[0]
    assert eligibility_problems([], rules, pool_split="validation") == []
    assert eligibility_problems(CASES, RULES, pool_split="test") == []
