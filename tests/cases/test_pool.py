"""Tests of studyhub/cases/pool.py: the pool, the calibration split and their problems."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from studyhub.cases import CaseRecord
from studyhub.cases.pool import calibration_cases, pool_cases, pool_frame, split_problems
from studyhub.protocol.load import load_study
from tests.paths import DEMO_PROTOCOL


def _case(key: str, label: str, split: str | None) -> CaseRecord:
    return CaseRecord(
        case_key=key,
        source=f"{key}.png",
        path=Path(f"/data/{key}.png"),
        image_sha256="0" * 64,
        label=label,
        mask_path=None,
        split=split,
        metadata={"site": "north"},
        row=1,
    )


@pytest.fixture(scope="module")
def protocol():  # type: ignore[no-untyped-def]
    return load_study(DEMO_PROTOCOL).protocol  # pool split 'test', calibration 'calibration'


def test_a_protocol_whose_splits_exist_has_no_problem(protocol) -> None:  # type: ignore[no-untyped-def]
    labels = ["none", "crack", "scratch", "pit"]
    records = [_case(f"t{i}", labels[i % 4], "test") for i in range(4)]
    records += [_case(f"c{i}", labels[i % 4], "calibration") for i in range(12)]
    assert split_problems(protocol, records) == []
    assert [r.case_key for r in pool_cases(protocol, records)] == ["t0", "t1", "t2", "t3"]
    assert len(calibration_cases(protocol, records)) == 12


def test_every_split_problem_at_once(protocol) -> None:  # type: ignore[no-untyped-def]
    records = [_case("a", "none", "train"), _case("b", "none", "dev")]
    problems = split_problems(protocol, records)
    assert problems == [
        "sampling.pool_split is 'test' but no case belongs to that split (the data's splits "
        "are ['dev', 'train']); name an existing split or set it to null",
        "model.calibration_split is 'calibration' but no case belongs to that split (the "
        "data's splits are ['dev', 'train']); name an existing split or set it to null",
    ]


def test_a_small_single_class_calibration_split(protocol) -> None:  # type: ignore[no-untyped-def]
    records = [_case("t", "none", "test")] + [
        _case(f"c{i}", "pit", "calibration") for i in range(3)
    ]
    problems = split_problems(protocol, records)
    assert problems == [
        "model.calibration_split 'calibration': temperature scaling needs at least 10 "
        "calibration cases, got 3; enlarge the calibration split or set "
        "model.calibration_split: null",
        "model.calibration_split 'calibration': the calibration split holds a single class; "
        "temperature scaling needs several; use a split with every class",
    ]


def test_no_split_column(protocol) -> None:  # type: ignore[no-untyped-def]
    problems = split_problems(protocol, [_case("a", "none", None)])
    assert "(the data has no split column)" in problems[0]


def test_pool_frame_with_and_without_predictions() -> None:
    labels = ["none", "pit"]
    records = [_case("a", "none", "test"), _case("b", "pit", "test")]
    plain = pool_frame(records, labels)
    assert list(plain.columns) == ["key", "label", "site"]
    probs = np.array([[0.9, 0.1], [0.8, 0.2]])
    scored = pool_frame(records, labels, probs)
    assert list(scored["correct"]) == [True, False]
    assert list(scored["predicted"]) == ["none", "none"]
    assert list(scored["confidence"]) == [0.9, 0.8]
