"""Free text is counted per item and arm, never analysed."""

from __future__ import annotations

import pandas as pd
import pytest

from studyhub.errors import DataError
from studyhub.stats.free_text import free_text_summary


def test_counts_non_empty_answers_per_item_and_arm() -> None:
    answers = pd.DataFrame(
        {
            "item": ["comment", "comment", "comment", "note", "usefulness"],
            "arm": ["ig", "ig", "random", "ig", "ig"],
            "label": ["edge missed", "  ", None, "stamp", "4"],
            "item_type": ["free_text"] * 4 + ["likert"],
        }
    )
    assert free_text_summary(answers) == {"comment": {"ig": 1, "random": 0}, "note": {"ig": 1}}
    assert free_text_summary(answers, item_type=None, items=["note"]) == {"note": {"ig": 1}}


def test_without_item_types_it_asks_for_them() -> None:
    with pytest.raises(DataError, match="pass item_type='COLUMN' or items="):
        free_text_summary(pd.DataFrame({"item": ["c"], "arm": ["a"], "label": ["x"]}))
