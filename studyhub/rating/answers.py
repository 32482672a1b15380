"""Validating a rater's answers and cue marks against the registered instrument.

Answers are stored normalised: likert as ``int``, yes_no as ``"yes"`` / ``"no"``,
single_choice as the choice's text, diagnosis as ``{"label": str, "confidence":
float in [0, 100]}``, free_text as ``str``. Cue marks are points in fractions of
the image (``x``, ``y`` in [0, 1], from the top-left corner) tagged
``"correct"`` or ``"misleading"``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

from studyhub.errors import InputError
from studyhub.protocol.schema import Item, Protocol

__all__ = [
    "CUE_TAGS",
    "MAX_CUE_MARKS",
    "MAX_FREE_TEXT",
    "MAX_TIME_ON_TASK_MS",
    "check_time_on_task",
    "validate_answers",
    "validate_cue_marks",
]

#: Tags a cue mark may carry.
CUE_TAGS: Final = ("correct", "misleading")
#: Most cue marks on one item.
MAX_CUE_MARKS: Final = 50
#: Longest free-text answer, in characters.
MAX_FREE_TEXT: Final = 10_000
#: Longest time on task accepted (one day), in milliseconds.
MAX_TIME_ON_TASK_MS: Final = 24 * 3600 * 1000


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _expects(item: Item, protocol: Protocol) -> str:
    if item.type == "likert":
        return f"a whole number from {item.scale_min} to {item.scale_max}"
    if item.type == "yes_no":
        return "yes or no"
    if item.type == "single_choice":
        return "one of " + ", ".join(repr(c) for c in item.choices)
    if item.type == "diagnosis":
        return "{'label': one of " + ", ".join(protocol.data.labels) + ", 'confidence': 0 to 100}"
    return f"text of at most {MAX_FREE_TEXT} characters"


def _one(item: Item, value: Any, protocol: Protocol) -> Any:
    wrong = InputError(
        f"answer to {item.id!r} is {value!r}; give {_expects(item, protocol)} ({item.prompt})"
    )
    if item.type == "likert":
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise wrong
        try:
            number = float(value)
        except ValueError:
            raise wrong from None
        if not number.is_integer() or not (item.scale_min or 0) <= number <= (item.scale_max or 0):
            raise wrong
        return int(number)
    if item.type == "yes_no":
        if isinstance(value, bool):
            return "yes" if value else "no"
        if isinstance(value, str) and value.strip().lower() in ("yes", "no"):
            return value.strip().lower()
        raise wrong
    if item.type == "single_choice":
        if isinstance(value, str) and value.strip() in item.choices:
            return value.strip()
        raise wrong
    if item.type == "diagnosis":
        if not isinstance(value, Mapping) or set(value) != {"label", "confidence"}:
            raise wrong
        label, confidence = value["label"], value["confidence"]
        if not isinstance(label, str) or label not in protocol.data.labels:
            raise wrong
        if isinstance(confidence, bool) or not isinstance(confidence, int | float):
            raise wrong
        if not math.isfinite(confidence) or not 0 <= confidence <= 100:
            raise wrong
        return {"label": label, "confidence": float(confidence)}
    if not isinstance(value, str) or len(value) > MAX_FREE_TEXT:
        raise wrong
    return value.strip()


def validate_answers(answers: Any, protocol: Protocol) -> dict[str, Any]:
    """Check ``answers`` against ``protocol.instrument`` and return them normalised.

    Parameters
    ----------
    answers : mapping of str to value
        Item id -> answer, as the front end collected it.
    protocol : Protocol
        The registered protocol.

    Returns
    -------
    dict
        Every answered item, normalised (see the module docstring); optional
        items left blank are omitted.

    Raises
    ------
    InputError
        Naming the item, the value found and what to give instead.
    """
    if not isinstance(answers, Mapping):
        raise InputError(
            f"answers must map item ids to values, got {type(answers).__name__}; send e.g. "
            "{'usefulness': 4, 'plausible': 'yes'}"
        )
    items = {item.id: item for item in protocol.instrument.items}
    unknown = sorted(str(k) for k in answers if k not in items)
    if unknown:
        raise InputError(
            f"answers name {', '.join(map(repr, unknown))}, which the instrument does not have "
            f"(its items: {', '.join(items)}); remove them"
        )
    clean: dict[str, Any] = {}
    for item_id, item in items.items():
        value = answers.get(item_id)
        if _blank(value):
            if item.required:
                raise InputError(
                    f"item {item_id!r} is required and has no answer; give "
                    f"{_expects(item, protocol)} ({item.prompt})"
                )
            continue
        clean[item_id] = _one(item, value, protocol)
    return clean


def validate_cue_marks(marks: Any, protocol: Protocol) -> list[dict[str, Any]]:
    """Check cue marks: points ``{x, y, tag}`` with x, y in [0, 1] and a known tag.

    Raises
    ------
    InputError
        When marks are given but the protocol switched cue marking off, or a
        mark is malformed (the message names which one).
    """
    if marks is None:
        return []
    if not isinstance(marks, Sequence) or isinstance(marks, str | bytes):
        raise InputError(
            f"cue_marks must be a list of {{x, y, tag}} points, got {type(marks).__name__}"
        )
    if marks and not protocol.instrument.cue_marking:
        raise InputError(
            "this protocol does not collect cue marks (instrument.cue_marking is false); "
            "send cue_marks=[]"
        )
    if len(marks) > MAX_CUE_MARKS:
        raise InputError(
            f"{len(marks)} cue marks sent; at most {MAX_CUE_MARKS} are kept per item, remove some"
        )
    clean: list[dict[str, Any]] = []
    for n, mark in enumerate(marks, 1):
        if not isinstance(mark, Mapping) or set(mark) != {"x", "y", "tag"}:
            raise InputError(
                f"cue mark {n} is {mark!r}; give {{'x': 0..1, 'y': 0..1, 'tag': "
                "'correct' or 'misleading'}"
            )
        coords = []
        for axis in ("x", "y"):
            v = mark[axis]
            if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= 1:
                raise InputError(
                    f"cue mark {n} has {axis}={v!r}; give a fraction of the image from 0 to 1"
                )
            coords.append(float(v))
        if mark["tag"] not in CUE_TAGS:
            raise InputError(f"cue mark {n} has tag {mark['tag']!r}; use 'correct' or 'misleading'")
        clean.append({"x": coords[0], "y": coords[1], "tag": mark["tag"]})
    return clean


def check_time_on_task(ms: Any) -> int:
    """A whole number of milliseconds from 0 to one day."""
    if isinstance(ms, bool) or not isinstance(ms, int) or not 0 <= ms <= MAX_TIME_ON_TASK_MS:
        raise InputError(
            f"time_on_task_ms is {ms!r}; give the whole milliseconds between showing the item "
            f"and submitting it (0 to {MAX_TIME_ON_TASK_MS})"
        )
    return ms
