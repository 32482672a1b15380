"""Make docs/gallery: every arm of the demo protocol on a demo image and on a greyscale image.

Run from the repository root: ``.venv/bin/python scripts/make_gallery.py`` (add
``--check`` to compare with the committed hashes without writing anything).

The maps are fixed synthetic stand-ins with each arm's character, not the demo
model's outputs, so that the gallery shows (and its test pins) the rendering
alone, the same on every machine: Integrated Gradients' pixel-wise speckle
concentrated on the finding, Grad-CAM's coarse 8×8 blob, the random control's
uniform noise and the weight-randomized model's speckle that ignores the finding.
Each is rendered with the demo protocol's ``rendering:`` settings (at a smaller
canvas, to keep the files small) and, for comparison, with a look close to the
one before issue 13 (cividis, block upsampling, pixel-wise top-10% outline, no
opacity floor).

Writes ``docs/gallery/gallery.png`` (rows: demo image, greyscale image, each in the
new look and the old; columns: the plain image, then one column per arm) and
``docs/gallery/hashes.json``: the SHA-256 of every rendered cell's RGB array
(not of PNG bytes), which ``tests/explain/test_gallery.py`` recomputes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from studyhub.demo.synth import generate
from studyhub.explain.render import render_arrays
from studyhub.protocol.load import load_protocol
from studyhub.protocol.schema import Rendering

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "gallery"
CANVAS_PX = 256
ARMS = ("ig", "gradcam", "random_map", "randomized_model")
OLD_LOOK = {
    "colormap": "cividis",
    "interpolation": "nearest",
    "smoothing_px": 0.0,
    "min_region_percent": 0.0,
    "opacity_floor": 0.0,
}


def grey_image(side: int = 32) -> NDArray[np.float64]:
    """A 32×32 medical-like greyscale image: a bright round lesion on graded tissue, with noise."""
    yy, xx = np.mgrid[0:side, 0:side] / (side - 1)
    rng = np.random.default_rng(7)
    tissue = 0.35 + 0.25 * xx + 0.08 * np.sin(9.0 * yy)
    lesion = 0.35 * np.exp(-((yy - 0.62) ** 2 + (xx - 0.38) ** 2) / 0.012)
    return np.clip(tissue + lesion + 0.04 * rng.standard_normal((side, side)), 0.0, 1.0)


def _blob(shape: tuple[int, int], cy: float, cx: float, width: float) -> NDArray[np.float64]:
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    return np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2.0 * width**2))


def arm_maps(
    shape: tuple[int, int], centre: tuple[float, float], seed: int
) -> dict[str, NDArray[np.float64]]:
    """Synthetic maps with each arm's character, the finding at ``centre`` (row, column)."""
    rng = np.random.default_rng(seed)
    h, w = shape
    target = _blob(shape, *centre, width=h / 10)
    speckle = rng.standard_normal(shape)
    ig = target * np.abs(speckle) * 2.0 + 0.15 * speckle  # pixel-wise, signed, noisy
    coarse = rng.random((8, 8)) * 0.2 + _blob((8, 8), centre[0] * 8 / h, centre[1] * 8 / w, 1.2)
    gradcam = np.asarray(np.kron(coarse, np.ones((h // 8, w // 8)))[:h, :w], dtype=np.float64)
    randomized = np.abs(rng.standard_normal(shape)) * _blob(shape, h * 0.2, w * 0.8, h / 4)
    return {
        "ig": ig,
        "gradcam": gradcam,
        "random_map": rng.random(shape),
        "randomized_model": randomized,
    }


def cases() -> dict[str, tuple[NDArray[np.float64], dict[str, NDArray[np.float64]]]]:
    """The two images and their arms' maps."""
    demo = next(c for c in generate(16, split="test", seed=0) if c.label == "crack")
    image = np.asarray(demo.image, dtype=np.float64)
    image = image if image.ndim == 2 else image[..., 0]
    ys, xs = np.nonzero(demo.mask == 1)
    centre = (float(ys.mean()), float(xs.mean()))
    grey = grey_image()
    return {
        "demo": (image, arm_maps(image.shape, centre, seed=1)),
        "grey": (grey, arm_maps(grey.shape, (0.62 * 31, 0.38 * 31), seed=2)),
    }


def looks() -> dict[str, Rendering]:
    """The demo protocol's rendering at the gallery's canvas, and the look before issue 13."""
    protocol, _ = load_protocol(ROOT / "protocols" / "inspection_demo.yaml")
    new = protocol.rendering.model_copy(update={"canvas_px": CANVAS_PX})
    return {"new": new, "old": new.model_copy(update=OLD_LOOK)}


def render_cells() -> dict[str, NDArray[np.uint8]]:
    """Every cell of the gallery as an RGB array, keyed ``image/look/arm``."""
    cells: dict[str, NDArray[np.uint8]] = {}
    for image_name, (image, maps) in cases().items():
        for look_name, settings in looks().items():
            cells[f"{image_name}/{look_name}/original"] = render_arrays(image, None, settings)
            for arm in ARMS:
                cells[f"{image_name}/{look_name}/{arm}"] = render_arrays(image, maps[arm], settings)
    return cells


def array_sha256(pixels: NDArray[np.uint8]) -> str:
    """SHA-256 of an array's shape and bytes (C order)."""
    digest = hashlib.sha256(repr(pixels.shape).encode())
    digest.update(np.ascontiguousarray(pixels).tobytes())
    return digest.hexdigest()


def hashes(cells: dict[str, NDArray[np.uint8]]) -> dict[str, str]:
    return {name: array_sha256(pixels) for name, pixels in sorted(cells.items())}


def sheet(cells: dict[str, NDArray[np.uint8]]) -> Image.Image:
    """Rows image/look, columns original + arms, 4 px white gutters."""
    rows = [(i, look) for i in ("demo", "grey") for look in ("new", "old")]
    columns = ["original", *ARMS]
    h, w = next(iter(cells.values())).shape[:2]
    gap = 4
    out = np.full(
        (len(rows) * (h + gap) - gap, len(columns) * (w + gap) - gap, 3), 255, dtype=np.uint8
    )
    for r, (image_name, look) in enumerate(rows):
        for c, arm in enumerate(columns):
            y, x = r * (h + gap), c * (w + gap)
            out[y : y + h, x : x + w] = cells[f"{image_name}/{look}/{arm}"]
    return Image.fromarray(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, write nothing")
    args = parser.parse_args()
    cells = render_cells()
    found = hashes(cells)
    path = OUT / "hashes.json"
    if args.check:
        committed = json.loads(path.read_text())
        changed = sorted(k for k in found if committed.get(k) != found[k])
        print("unchanged" if not changed else f"changed: {', '.join(changed)}")
        return 1 if changed else 0
    OUT.mkdir(parents=True, exist_ok=True)
    sheet(cells).save(OUT / "gallery.png", optimize=True)
    path.write_text(json.dumps(found, indent=2) + "\n")
    print(f"wrote {OUT / 'gallery.png'} and {path} ({len(found)} cells)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
