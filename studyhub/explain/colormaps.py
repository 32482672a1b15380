"""The heat map's colours: which colormaps a rendering may use, and why.

Every colormap offered is readable with the common colour-vision deficiencies:
its lightness rises monotonically, so the order of values survives without hue.
The default, ``plasma`` (Smith and van der Walt's viridis family, perceptually
uniform), and ``YlOrRd`` (ColorBrewer's yellow-orange-red sequential ramp, close
to a single-hue ramp) keep a CIELAB chroma of at least 47 over the visible part
of the scale (normalised 0.2 to 1, above the default opacity floor): the overlay
is never grey or black, so it stays distinct from greyscale anatomy, surfaces
and backgrounds. ``cividis`` (chroma below 3 around 0.5: its middle is grey, and
vanishes on grey images), ``viridis``, ``magma`` and ``inferno`` (near black at
their low end) remain for protocols that already name them. Chroma was measured
with ``skimage.color.rgb2lab`` on matplotlib's tables (minimum over [0.2, 1]:
plasma 54, YlOrRd 48, inferno 45, magma 31, viridis 25, cividis 0.1).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

from studyhub.errors import InputError

__all__ = ["COLORMAPS", "colormap_lut"]

COLORMAPS: tuple[str, ...] = ("plasma", "YlOrRd", "cividis", "viridis", "magma", "inferno")
"""Colour-blind-safe colormaps a rendering may use (see the module documentation)."""


@lru_cache(maxsize=16)
def colormap_lut(name: str) -> NDArray[np.uint8]:
    """The colormap as a ``(256, 3)`` uint8 table (matplotlib's values).

    Raises
    ------
    InputError
        If ``name`` is not one of :data:`COLORMAPS`.
    """
    if name not in COLORMAPS:
        raise InputError(
            f"colormap is {name!r}; use one of {', '.join(COLORMAPS)} "
            "(colour-blind safe; plasma and YlOrRd stay distinct from grey images)"
        )
    from matplotlib import colormaps

    table = colormaps[name](np.linspace(0.0, 1.0, 256))[:, :3]
    lut = np.round(table * 255.0).astype(np.uint8)
    lut.setflags(write=False)
    return lut
