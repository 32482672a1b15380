"""studyhub.demo: the built-in domain, needing no download.

Synthetic surface-inspection images with pixel masks and a planted stamp-mark
confounder (:mod:`studyhub.demo.synth`), a small CNN with shipped weights
(:mod:`studyhub.demo.model`), its deterministic training
(:mod:`studyhub.demo.train`) and a measurement of its stamp shortcut
(:mod:`studyhub.demo.evaluate`).

The synthetic-data names import with numpy only; the model names load torch on
first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from studyhub.demo.synth import (
    CLASS_NAMES,
    IMAGE_SIZE,
    LIGHTINGS,
    LINES,
    MANIFEST_COLUMNS,
    MASK_LABELS,
    SPLITS,
    STAMP_LABEL,
    STAMP_RATE_HELD_OUT,
    STAMP_RATE_TRAIN,
    Sample,
    generate,
    read_dataset,
    with_stamp,
    write_dataset,
)

if TYPE_CHECKING:
    from studyhub.demo.evaluate import ShortcutReport, accuracy, measure_shortcut, predict_proba
    from studyhub.demo.model import LAST_CONV, WEIGHTS_PATH, InspectionNet, load, preprocess

__all__ = [
    "CLASS_NAMES",
    "IMAGE_SIZE",
    "LAST_CONV",
    "LIGHTINGS",
    "LINES",
    "MANIFEST_COLUMNS",
    "MASK_LABELS",
    "SPLITS",
    "STAMP_LABEL",
    "STAMP_RATE_HELD_OUT",
    "STAMP_RATE_TRAIN",
    "WEIGHTS_PATH",
    "InspectionNet",
    "Sample",
    "ShortcutReport",
    "accuracy",
    "generate",
    "load",
    "measure_shortcut",
    "predict_proba",
    "preprocess",
    "read_dataset",
    "with_stamp",
    "write_dataset",
]

_LAZY = {
    "LAST_CONV": "studyhub.demo.model",
    "WEIGHTS_PATH": "studyhub.demo.model",
    "InspectionNet": "studyhub.demo.model",
    "load": "studyhub.demo.model",
    "preprocess": "studyhub.demo.model",
    "ShortcutReport": "studyhub.demo.evaluate",
    "accuracy": "studyhub.demo.evaluate",
    "measure_shortcut": "studyhub.demo.evaluate",
    "predict_proba": "studyhub.demo.evaluate",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
