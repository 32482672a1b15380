"""Validation errors become one located problem per key, with the value and the allowed range."""

from __future__ import annotations

from pathlib import Path

import pytest

from studyhub.errors import ProtocolError
from studyhub.protocol import load_study


def _problems(demo_copy: Path, old: str, new: str) -> list[str]:
    demo_copy.write_text(demo_copy.read_text().replace(old, new))
    with pytest.raises(ProtocolError) as info:
        load_study(demo_copy)
    return str(info.value).splitlines()[1:]


def test_a_value_fitting_no_member_of_a_union_is_one_problem(demo_copy: Path) -> None:
    problems = _problems(
        demo_copy,
        "params: {base_method: integrated_gradients, n_steps: 32}",
        "params: {levels: 0}",
    )
    assert len(problems) == 1
    assert (
        "key arms[3].params.levels: input should be 'all' (found 0); or input should be "
        in (problems[0])
    )
    assert "greater than or equal to 1" in problems[0]


def test_a_list_given_for_a_number_or_list_is_checked_item_by_item(demo_copy: Path) -> None:
    problems = _problems(
        demo_copy,
        "params: {n_steps: 32, baseline: black}",
        "params: {n_steps: 32, black_value: [0.5, .nan]}",
    )
    assert len(problems) == 1
    assert "key arms[0].params.black_value[1]: input should be a finite number" in problems[0]


def test_a_bad_mapping_key_is_named_by_its_path(demo_copy: Path) -> None:
    problems = _problems(demo_copy, "{1: crack, 2: scratch", "{-1: crack, 2: scratch")
    assert len(problems) == 1
    assert "key data.mask_labels[-1]: input should be greater than or equal to 0" in problems[0]
    assert "Fix: use a value >= 0 and <= 65535 (mask_labels:" in problems[0]


def test_range_errors_state_the_range(demo_copy: Path) -> None:
    (problem,) = _problems(demo_copy, "uncertainty_samples: 8", "uncertainty_samples: 1")
    assert "found 1). Fix: use a value >= 2 and <= 256 (uncertainty_samples:" in problem
