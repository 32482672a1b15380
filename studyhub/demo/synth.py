"""Synthetic surface-inspection images with pixel masks and a planted confounder.

Every image is a 64×64 grayscale crop of brushed metal (:data:`IMAGE_SIZE`):
streaks along the brushing direction, a lighting gradient and sensor noise. A
case shows one of four classes (:data:`CLASS_NAMES`):

``none``
    defect-free surface.
``crack``
    a thin, jagged, branching dark line.
``scratch``
    a long, straight, thin line, bright or dark.
``pit``
    one to three small dark round blobs.

Each case carries a pixel mask whose integer labels map to domain terms through
:data:`MASK_LABELS` (0 background, 1 crack, 2 scratch, 3 pit, 4 stamp mark), so
that narratives can say "64% of the attribution falls on the crack, 22% on the
stamp mark". Defect masks are the drawn pixels widened by one pixel, a tolerance
band for blurry attribution maps.

Metadata per case, for subgroup analyses: production ``line`` (A, B or C; they
differ in brushing direction and streak strength), ``lighting`` (``bright`` or
``dim``; dim images are darker with lower contrast, so less signal over the same
sensor noise) and ``stamp``.

The confounder
--------------
A small bright ring logo, the *stamp mark*, sits near one corner of some images.
In the ``train`` split it co-occurs with pits: 90% of pit images carry it and 5%
of the others (:data:`STAMP_RATE_TRAIN`). In the ``calibration`` and ``test``
splits it is drawn independently of the class, on half of the images
(:data:`STAMP_RATE_HELD_OUT`). A model trained on the train split can learn
"stamp means pit"; :func:`with_stamp` re-renders a case with the stamp added or
removed and everything else identical, so the shortcut can be measured.

Determinism
-----------
Case ``index`` of ``split`` under ``seed`` is a pure function of
``(seed, split, index)``: generating cases 0..99 or 50..149 gives the same case
50. Classes are balanced in blocks of four consecutive indices. Intensities are
quantized to multiples of 1/255, so writing an image as an 8-bit PNG and
reading it back is lossless.
"""

from __future__ import annotations

import csv
import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image
from scipy import ndimage

from studyhub.errors import DataError, InputError

__all__ = [
    "CLASS_NAMES",
    "IMAGE_SIZE",
    "LIGHTINGS",
    "LINES",
    "MANIFEST_COLUMNS",
    "MASK_LABELS",
    "SPLITS",
    "STAMP_LABEL",
    "STAMP_RATE_HELD_OUT",
    "STAMP_RATE_TRAIN",
    "Sample",
    "generate",
    "read_dataset",
    "with_stamp",
    "write_dataset",
]

IMAGE_SIZE: int = 64
"""Height and width of every image, in pixels."""

CLASS_NAMES: tuple[str, ...] = ("none", "crack", "scratch", "pit")
"""Class labels; a model's output index ``i`` means ``CLASS_NAMES[i]``."""

MASK_LABELS: dict[int, str] = {
    0: "background",
    1: "crack",
    2: "scratch",
    3: "pit",
    4: "stamp mark",
}
"""Integer mask value -> domain term, for region scoring and narratives."""

STAMP_LABEL: int = 4
"""Mask value of the stamp mark (the confounder)."""

SPLITS: tuple[str, ...] = ("train", "calibration", "test")
"""Data splits; ``calibration`` is held out for temperature scaling."""

LINES: tuple[str, ...] = ("A", "B", "C")
"""Production lines (metadata ``line``)."""

LIGHTINGS: tuple[str, ...] = ("bright", "dim")
"""Lighting conditions (metadata ``lighting``)."""

STAMP_RATE_TRAIN: dict[str, float] = {"none": 0.05, "crack": 0.05, "scratch": 0.05, "pit": 0.90}
"""Probability of a stamp mark given the class, in the ``train`` split."""

STAMP_RATE_HELD_OUT: float = 0.5
"""Probability of a stamp mark in ``calibration`` and ``test``, whatever the class."""

MANIFEST_COLUMNS: tuple[str, ...] = (
    "image_path",
    "label",
    "mask_path",
    "split",
    "line",
    "lighting",
    "stamp",
    "case_id",
)
"""Columns of the CSV manifest written by :func:`write_dataset`."""

_SPLIT_CODE = {name: code for code, name in enumerate(SPLITS)}
_CASE_STREAM = 0
_LABEL_STREAM = 1
_LINE_STREAK = {
    # line: (brushing angle in degrees, streak amplitude)
    "A": (0.0, 0.030),
    "B": (0.0, 0.050),
    "C": (90.0, 0.040),
}
_LIGHTING = {
    # lighting: (base level range, contrast gain)
    "bright": ((0.55, 0.68), 1.0),
    "dim": ((0.27, 0.36), 0.55),
}
_SENSOR_NOISE = 0.025
_ALPHA_FLOOR = 0.05


@dataclass(frozen=True, eq=False)
class Sample:
    """One synthetic case.

    Attributes
    ----------
    case_id : str
        Stable identifier, ``"<split>-<seed>-<index:05d>"``.
    split : str
        One of :data:`SPLITS`.
    seed : int
        The generator seed.
    index : int
        Position within the split.
    label : str
        One of :data:`CLASS_NAMES`.
    image : numpy.ndarray
        ``float32`` array of shape ``(IMAGE_SIZE, IMAGE_SIZE)`` in [0, 1].
    mask : numpy.ndarray
        ``uint8`` array of the same shape; values are keys of :data:`MASK_LABELS`.
    metadata : dict
        ``line`` (str), ``lighting`` (str) and ``stamp`` (bool).
    """

    case_id: str
    split: str
    seed: int
    index: int
    label: str
    image: NDArray[np.float32] = field(repr=False)
    mask: NDArray[np.uint8] = field(repr=False)
    metadata: dict[str, Any]

    @property
    def label_index(self) -> int:
        """Index of :attr:`label` in :data:`CLASS_NAMES` (the model's class index)."""
        return CLASS_NAMES.index(self.label)


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise InputError(f"seed is {seed!r}; pass a non-negative integer such as 0")
    return int(seed)


def _check_split(split: str) -> str:
    if split not in _SPLIT_CODE:
        raise InputError(f"split is {split!r}; use one of {', '.join(SPLITS)}")
    return split


def _check_count(name: str, n: int, *, minimum: int = 1) -> int:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < minimum:
        raise InputError(f"{name} is {n!r}; pass an integer >= {minimum}")
    return int(n)


def _to_float(pixels: NDArray[np.uint8]) -> NDArray[np.float32]:
    """8-bit pixels -> float32 in [0, 1]; the one conversion used everywhere."""
    return pixels.astype(np.float32) / np.float32(255.0)


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def _label(seed: int, split: str, index: int) -> str:
    # Balanced in blocks of four: each block is a seeded permutation of the classes.
    block = _rng(seed, _SPLIT_CODE[split], _LABEL_STREAM, index // len(CLASS_NAMES))
    order = block.permutation(len(CLASS_NAMES))
    return CLASS_NAMES[int(order[index % len(CLASS_NAMES)])]


def _background(rng: np.random.Generator, line: str, lighting: str) -> NDArray[np.float64]:
    size = IMAGE_SIZE
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    angle_deg, streak_amp = _LINE_STREAK[line]
    (lo, hi), gain = _LIGHTING[lighting]
    theta = math.radians(angle_deg + rng.normal(0.0, 4.0))
    # Brushed metal: a 1-D noise profile across the brushing direction ...
    across = -xx * math.sin(theta) + yy * math.cos(theta)
    grid = np.arange(-2 * size, 2 * size + 1, dtype=np.float64)
    profile = ndimage.gaussian_filter1d(rng.normal(0.0, 1.0, grid.size), 0.8)
    profile /= profile.std() + 1e-12
    streaks = np.interp(across, grid, profile)
    # ... modulated slowly along it, so streaks fade in and out.
    along = xx * math.cos(theta) + yy * math.sin(theta)
    phase = rng.uniform(0.0, 2 * math.pi)
    streaks *= 1.0 + 0.4 * np.sin(2 * math.pi * along / rng.uniform(40.0, 90.0) + phase)
    # Lighting gradient in a random direction.
    phi = rng.uniform(0.0, 2 * math.pi)
    ramp = ((xx - size / 2) * math.cos(phi) + (yy - size / 2) * math.sin(phi)) / size
    base = rng.uniform(lo, hi)
    image = base + gain * (streak_amp * streaks + rng.uniform(0.05, 0.15) * ramp)
    return image


def _stroke(points: list[tuple[float, float]], alpha: NDArray[np.float64]) -> None:
    """Draw an anti-aliased 1-pixel polyline into ``alpha`` (max-composited)."""
    from skimage.draw import line_aa

    size = alpha.shape[0]
    for (r0, c0), (r1, c1) in itertools.pairwise(points):
        rr, cc, val = line_aa(round(r0), round(c0), round(r1), round(c1))
        keep = (rr >= 0) & (rr < size) & (cc >= 0) & (cc < size)
        rr, cc, val = rr[keep], cc[keep], val[keep]
        alpha[rr, cc] = np.maximum(alpha[rr, cc], val)


def _walk(
    rng: np.random.Generator, start: tuple[float, float], heading: float, steps: int
) -> list[tuple[float, float]]:
    r, c = start
    points = [(r, c)]
    drift = rng.normal(0.0, 0.04)
    for _ in range(steps):
        heading += drift + rng.normal(0.0, 0.35)
        step = rng.uniform(1.5, 2.5)
        r = float(np.clip(r + step * math.sin(heading), 2, IMAGE_SIZE - 3))
        c = float(np.clip(c + step * math.cos(heading), 2, IMAGE_SIZE - 3))
        points.append((r, c))
    return points


def _crack(rng: np.random.Generator) -> tuple[NDArray[np.float64], float]:
    alpha = np.zeros((IMAGE_SIZE, IMAGE_SIZE))
    start = (rng.uniform(18, 46), rng.uniform(18, 46))
    heading = rng.uniform(0.0, 2 * math.pi)
    main = _walk(rng, start, heading, int(rng.integers(9, 16)))
    _stroke(main, alpha)
    # A second arm from the start, roughly opposite, then one or two branches.
    _stroke(_walk(rng, start, heading + math.pi, int(rng.integers(3, 8))), alpha)
    for _ in range(int(rng.integers(1, 3))):
        at = main[int(rng.integers(1, len(main)))]
        turn = rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 1.1)
        _stroke(_walk(rng, at, heading + turn, int(rng.integers(3, 7))), alpha)
    return alpha, -rng.uniform(0.20, 0.35)


def _scratch(rng: np.random.Generator) -> tuple[NDArray[np.float64], float]:
    alpha = np.zeros((IMAGE_SIZE, IMAGE_SIZE))
    centre = (rng.uniform(22, 42), rng.uniform(22, 42))
    heading = rng.uniform(0.0, math.pi)
    half = rng.uniform(14, 26)
    dr, dc = half * math.sin(heading), half * math.cos(heading)
    _stroke([(centre[0] - dr, centre[1] - dc), (centre[0] + dr, centre[1] + dc)], alpha)
    sign = 1.0 if rng.random() < 0.5 else -1.0
    return alpha, sign * rng.uniform(0.18, 0.30)


def _pits(rng: np.random.Generator) -> tuple[NDArray[np.float64], float]:
    yy, xx = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE].astype(np.float64)
    alpha = np.zeros((IMAGE_SIZE, IMAGE_SIZE))
    cr, cc = rng.uniform(18, 46), rng.uniform(18, 46)
    for _ in range(int(rng.integers(1, 4))):
        r, c = cr + rng.normal(0.0, 5.0), cc + rng.normal(0.0, 5.0)
        radius = rng.uniform(1.3, 2.2)
        blob = np.exp(-((yy - r) ** 2 + (xx - c) ** 2) / (2 * radius**2))
        alpha = np.maximum(alpha, blob)
    return alpha, -rng.uniform(0.20, 0.35)


def _stamp(rng: np.random.Generator) -> tuple[NDArray[np.float64], float]:
    yy, xx = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE].astype(np.float64)
    inset_r, inset_c = rng.uniform(5.5, 8.0), rng.uniform(5.5, 8.0)
    corner = int(rng.integers(0, 4))
    r = inset_r if corner in (0, 1) else IMAGE_SIZE - 1 - inset_r
    c = inset_c if corner in (0, 2) else IMAGE_SIZE - 1 - inset_c
    dist = np.sqrt((yy - r) ** 2 + (xx - c) ** 2)
    ring = np.clip(1.0 - np.abs(dist - 3.3) / 0.9, 0.0, 1.0)
    dot = np.clip(1.0 - dist / 1.2, 0.0, 1.0)
    return np.maximum(ring, dot), rng.uniform(0.18, 0.28)


_DEFECTS = {"crack": (_crack, 1), "scratch": (_scratch, 2), "pit": (_pits, 3)}


def _cut(alpha: NDArray[np.float64]) -> NDArray[np.float64]:
    """Zero the faint fringe, so a drawing changes no pixel outside its mask."""
    return np.where(alpha >= _ALPHA_FLOOR, alpha, 0.0)


def _region(alpha: NDArray[np.float64]) -> NDArray[np.bool_]:
    """Drawn pixels widened by one pixel (a tolerance band for blurry maps)."""
    return ndimage.binary_dilation(alpha > 0.0, structure=np.ones((3, 3), bool))


def _render(
    seed: int, split: str, index: int, *, stamp: bool | None = None, defect: bool = True
) -> Sample:
    """Render one case.

    ``stamp`` overrides the drawn stamp flag when not ``None``; ``defect=False``
    leaves the defect out (tests use it to check that masks cover the defect).
    """
    label = _label(seed, split, index)
    case_ss = np.random.SeedSequence(seed, spawn_key=(_SPLIT_CODE[split], _CASE_STREAM, index))
    meta_rng, bg_rng, defect_rng, stamp_rng = (np.random.default_rng(s) for s in case_ss.spawn(4))
    line = LINES[int(meta_rng.integers(0, len(LINES)))]
    lighting = LIGHTINGS[int(meta_rng.integers(0, len(LIGHTINGS)))]
    rate = STAMP_RATE_TRAIN[label] if split == "train" else STAMP_RATE_HELD_OUT
    drawn_stamp = bool(meta_rng.random() < rate)
    has_stamp = drawn_stamp if stamp is None else stamp

    gain = _LIGHTING[lighting][1]
    image = _background(bg_rng, line, lighting)
    mask = np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    if label in _DEFECTS:
        draw, mask_value = _DEFECTS[label]
        alpha, contrast = draw(defect_rng)
        alpha = _cut(alpha)
        if defect:
            image += gain * contrast * alpha
            mask[_region(alpha)] = mask_value
    # Always consume the stamp stream, so adding or removing it changes nothing else.
    stamp_alpha, stamp_contrast = _stamp(stamp_rng)
    stamp_alpha = _cut(stamp_alpha)
    if has_stamp:
        image += gain * stamp_contrast * stamp_alpha
        mask[_region(stamp_alpha)] = STAMP_LABEL
    image += bg_rng.normal(0.0, _SENSOR_NOISE, image.shape)
    quantized = _to_float(np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8))
    return Sample(
        case_id=f"{split}-{seed}-{index:05d}",
        split=split,
        seed=seed,
        index=index,
        label=label,
        image=quantized,
        mask=mask,
        metadata={"line": line, "lighting": lighting, "stamp": has_stamp},
    )


def generate(n: int, *, split: str, seed: int = 0, start: int = 0) -> list[Sample]:
    """Generate ``n`` cases of one split.

    Parameters
    ----------
    n : int
        Number of cases, at least 1.
    split : str
        ``"train"``, ``"calibration"`` or ``"test"``. Only ``train`` carries the
        stamp-pit confounder; see the module documentation.
    seed : int, default 0
        Non-negative generator seed.
    start : int, default 0
        Index of the first case; case ``i`` is the same whatever ``start`` and
        ``n`` were used to reach it.

    Returns
    -------
    list of Sample
        Cases ``start`` to ``start + n - 1``.

    Raises
    ------
    InputError
        If ``n`` < 1, ``start`` < 0, ``seed`` < 0 or ``split`` is unknown.

    Examples
    --------
    >>> cases = generate(8, split="test", seed=0)
    >>> cases[0].image.shape, sorted(cases[0].metadata)
    ((64, 64), ['lighting', 'line', 'stamp'])
    """
    n = _check_count("n", n)
    start = _check_count("start", start, minimum=0)
    split = _check_split(split)
    seed = _check_seed(seed)
    return [_render(seed, split, i) for i in range(start, start + n)]


def with_stamp(sample: Sample, stamp: bool) -> Sample:
    """Re-render a generated case with the stamp mark present or absent.

    Background, defect, lighting, noise and case id are unchanged; only the
    stamp pixels, the mask's stamp region and ``metadata["stamp"]`` differ. This
    is the counterfactual for measuring a model's reliance on the confounder.

    Parameters
    ----------
    sample : Sample
        A case from :func:`generate` (or :func:`read_dataset`).
    stamp : bool
        Whether the re-rendered case carries the stamp.

    Returns
    -------
    Sample
        The re-rendered case.
    """
    if not isinstance(sample, Sample):
        raise InputError(
            f"sample is a {type(sample).__name__}; pass a Sample from studyhub.demo.generate"
        )
    return _render(sample.seed, sample.split, sample.index, stamp=bool(stamp))


def _split_counts(n_per_split: int | Mapping[str, int]) -> dict[str, int]:
    if isinstance(n_per_split, Mapping):
        unknown = sorted(set(n_per_split) - set(SPLITS))
        if unknown:
            raise InputError(
                f"n_per_split names unknown split(s) {unknown}; use keys from {', '.join(SPLITS)}"
            )
        return {s: _check_count(f"n_per_split[{s!r}]", n_per_split[s]) for s in n_per_split}
    n = _check_count("n_per_split", n_per_split)
    return dict.fromkeys(SPLITS, n)


def write_dataset(
    folder: str | Path, n_per_split: int | Mapping[str, int], *, seed: int = 0
) -> Path:
    """Write a generated data set as PNG images, PNG masks and a CSV manifest.

    Layout under ``folder``: ``images/<case_id>.png`` (8-bit grayscale),
    ``masks/<case_id>.png`` (8-bit, values from :data:`MASK_LABELS`) and
    ``manifest.csv`` with columns :data:`MANIFEST_COLUMNS`, paths relative to the
    manifest, ``stamp`` written as ``true``/``false``. This is the CSV manifest
    format a user's own data would use.

    Parameters
    ----------
    folder : str or Path
        Output folder; created if missing. Existing files of the same names are
        overwritten.
    n_per_split : int or mapping of str to int
        Cases per split: one number for all three splits, or e.g.
        ``{"calibration": 100, "test": 200}`` to write only those splits.
    seed : int, default 0
        Generator seed.

    Returns
    -------
    Path
        The manifest path, ``folder / "manifest.csv"``.

    Raises
    ------
    InputError
        If a count is < 1, a split is unknown or the seed is negative.
    """
    counts = _split_counts(n_per_split)
    seed = _check_seed(seed)
    root = Path(folder)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    manifest = root / "manifest.csv"
    with manifest.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(MANIFEST_COLUMNS), lineterminator="\n")
        writer.writeheader()
        for split in SPLITS:
            if split not in counts:
                continue
            for sample in generate(counts[split], split=split, seed=seed):
                image_path = f"images/{sample.case_id}.png"
                mask_path = f"masks/{sample.case_id}.png"
                pixels = np.round(sample.image * 255.0).astype(np.uint8)
                Image.fromarray(pixels, mode="L").save(root / image_path)
                Image.fromarray(sample.mask, mode="L").save(root / mask_path)
                writer.writerow(
                    {
                        "image_path": image_path,
                        "label": sample.label,
                        "mask_path": mask_path,
                        "split": split,
                        "line": sample.metadata["line"],
                        "lighting": sample.metadata["lighting"],
                        "stamp": "true" if sample.metadata["stamp"] else "false",
                        "case_id": sample.case_id,
                    }
                )
    return manifest


def _parse_case_id(case_id: str) -> tuple[int, int]:
    _, seed, index = case_id.rsplit("-", 2)
    return int(seed), int(index)


def read_dataset(manifest: str | Path) -> list[Sample]:
    """Read a data set written by :func:`write_dataset` back into samples.

    Parameters
    ----------
    manifest : str or Path
        Path of ``manifest.csv``.

    Returns
    -------
    list of Sample
        One per manifest row, in file order; equal, array for array, to the
        generated cases.

    Raises
    ------
    DataError
        If the manifest lacks a column or a row cannot be read.
    """
    path = Path(manifest)
    if not path.is_file():
        raise DataError(f"manifest {str(path)!r} does not exist; pass the path of manifest.csv")
    samples = []
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in MANIFEST_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(
                f"manifest {str(path)!r} lacks column(s) {missing}; "
                f"write it with columns {', '.join(MANIFEST_COLUMNS)}"
            )
        for line_no, row in enumerate(reader, start=2):
            try:
                seed, index = _parse_case_id(row["case_id"])
                with Image.open(path.parent / row["image_path"]) as img:
                    pixels = _to_float(np.asarray(img.convert("L"), dtype=np.uint8))
                with Image.open(path.parent / row["mask_path"]) as img:
                    mask = np.asarray(img, dtype=np.uint8)
            except (OSError, ValueError) as exc:
                raise DataError(
                    f"manifest {str(path)!r} line {line_no}: cannot read case "
                    f"{row.get('case_id')!r} ({exc}); check the image and mask paths"
                ) from exc
            samples.append(
                Sample(
                    case_id=row["case_id"],
                    split=row["split"],
                    seed=seed,
                    index=index,
                    label=row["label"],
                    image=pixels,
                    mask=mask,
                    metadata={
                        "line": row["line"],
                        "lighting": row["lighting"],
                        "stamp": row["stamp"].strip().lower() == "true",
                    },
                )
            )
    return samples
