"""Explanations: Captum arms and controls, one standard rendering, cues, narratives, metrics.

``build_arm`` gives an arm in Captum's shape (configure in the constructor,
compute with ``attribute``); :mod:`studyhub.explain.compute` turns an arm and a
batch of cases into finished stimuli; :mod:`studyhub.explain.pipeline` stores
them with provenance (``studyhub explain``).

Names are loaded on first use, so that light modules (``cues``, ``narrative``)
can be imported by the rating service without loading torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "ARMS",
    "Narrative",
    "build_arm",
    "narrate",
    "png_chunks",
    "render_original",
    "render_stimulus",
]

_HOME = {
    "ARMS": "studyhub.explain.arms",
    "build_arm": "studyhub.explain.arms",
    "Narrative": "studyhub.explain.narrative",
    "narrate": "studyhub.explain.narrative",
    "png_chunks": "studyhub.explain.render",
    "render_original": "studyhub.explain.render",
    "render_stimulus": "studyhub.explain.render",
}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(_HOME[name]), name)
    raise AttributeError(f"module 'studyhub.explain' has no attribute {name!r}")
