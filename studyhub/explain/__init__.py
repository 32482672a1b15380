"""Explanations: Captum arms and controls, one standard rendering, cues, narratives, metrics.

``build_arm`` gives an arm in Captum's shape (configure in the constructor,
compute with ``attribute``); :mod:`studyhub.explain.compute` turns an arm and a
batch of cases into finished stimuli; :mod:`studyhub.explain.pipeline` stores
them with provenance (``studyhub explain``).
"""

from studyhub.explain.arms import ARMS, build_arm
from studyhub.explain.narrative import Narrative, narrate
from studyhub.explain.render import png_chunks, render_original, render_stimulus

__all__ = [
    "ARMS",
    "Narrative",
    "build_arm",
    "narrate",
    "png_chunks",
    "render_original",
    "render_stimulus",
]
