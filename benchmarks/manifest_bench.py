"""Time reading and checking a big CSV manifest (300,000 rows, about 50 MB by default).

Run ``python benchmarks/manifest_bench.py [--rows N] [--images K] [--folder DIR]``.
It writes a manifest whose rows point at N distinct file names, hard links to K
small PNGs (so the disk holds K images; every row is still opened, read and
hashed), with a mask on every tenth row and metadata columns, then times
:func:`studyhub.cases.read_cases` and its stages. It prints wall and CPU seconds
and microseconds per row for each stage, and two ratios measured in this run on
the same rows, before against now: checking each row's files (before: read
whole, hashed and decoded per row; now: hashed as read, identical files decoded
once) and resolving each path (before: ``Path.resolve()``; now:
:class:`~studyhub.cases.manifest.PathResolver`, one ``lstat`` per file). Wall
times on a busy machine are noisy; the CPU seconds are the steadier number.

Measured with this manifest (300,000 rows, 53 MB) on 2 shared CPU cores,
``read_cases`` before and after the streamed, checked-once reader, back to back:
40.2 s wall / 39.8 s CPU before (no output while it ran), 9.7 s / 9.6 s after,
with a progress bar on a terminal; at a load of 8-10 the same pair took 94.6 s
and 26.1 s of wall time.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from PIL import Image

from studyhub.cases import read_cases
from studyhub.cases.dataset import _pending_rows
from studyhub.cases.files import FileChecker
from studyhub.cases.layouts import source_table
from studyhub.cases.manifest import PathResolver
from studyhub.cases.records import open_pil, pil_mask, pil_shape
from studyhub.protocol.schema import DataSource

LABELS = ["none", "crack", "scratch", "pit"]
MAX_LINKS = 60_000  # ext4 allows 65,000 hard links per file
T = TypeVar("T")


def write_manifest(root: Path, n_rows: int, n_images: int) -> Path:
    """A manifest of ``n_rows`` rows (hard links to ``n_images`` 32x32 PNGs) under ``root``."""
    n_images = max(n_images, -(-n_rows // MAX_LINKS))
    rng = np.random.default_rng(0)
    sources = root / "sources"
    images = root / "images"
    sources.mkdir(parents=True)
    images.mkdir()
    for i in range(n_images):
        pixels = rng.integers(0, 255, (32, 32), dtype=np.uint8)
        Image.fromarray(pixels).save(sources / f"img{i}.png")
        Image.fromarray((pixels > 127).astype(np.uint8)).save(sources / f"mask{i}.png")
    manifest = root / "manifest.csv"
    with manifest.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(
            [
                "case_id",
                "image_path",
                "label",
                "mask_path",
                "split",
                "site",
                "scanner",
                "dose",
                "age",
                "note",
            ]
        )
        for r in range(n_rows):
            image = f"images/{r:07d}.png"
            os.link(sources / f"img{r % n_images}.png", root / image)
            mask = ""
            if r % 10 == 0:
                mask = f"images/{r:07d}_mask.png"
                os.link(sources / f"mask{r % n_images}.png", root / mask)
            writer.writerow(
                [
                    f"case-{r:07d}",
                    image,
                    LABELS[r % 4],
                    mask,
                    ("test", "calibration", "train")[r % 3],
                    f"site-{r % 17}",
                    f"{r % 5:03d}",
                    f"{(r % 97) / 7:.3f}",
                    str(20 + r % 60),
                    f"synthetic row {r} of the benchmark manifest, nothing to see here, "
                    "padding the row to a realistic width",
                ]
            )
    return manifest


def _files_before(pending: list[Any]) -> int:
    """Each row's files as they were checked before: read whole, hashed, decoded, every time."""
    for item in pending:
        data = Path(item.path).read_bytes()
        hashlib.sha256(data).hexdigest()
        with open_pil(data) as img:
            pil_shape(img)
        if item.mask_path is not None:
            with open_pil(Path(item.mask_path).read_bytes()) as img:
                pil_mask(img)
    return len(pending)


def _timed(label: str, rows: int, fn: Callable[[], T]) -> tuple[float, T]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(
        f"{label:<48s} {wall:7.2f} s wall {cpu:7.2f} s cpu {1e6 * cpu / rows:8.1f} us/row (cpu)",
        flush=True,
    )
    return cpu, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--images", type=int, default=8, help="distinct small PNGs linked to")
    parser.add_argument("--folder", type=Path, help="where to write it (default: a temp folder)")
    args = parser.parse_args()
    root = args.folder or Path(tempfile.mkdtemp(prefix="manifest-bench-"))
    try:
        began = time.perf_counter()
        manifest = write_manifest(root, args.rows, args.images)
        size = manifest.stat().st_size / 1e6
        print(f"wrote {args.rows} rows, {size:.1f} MB in {time.perf_counter() - began:.1f} s")
        data = DataSource(kind="csv", path=str(manifest), labels=LABELS)
        n = args.rows

        _timed("read_cases, whole", n, lambda: read_cases(data, root))

        _, table = _timed(
            "  reading the manifest (csv, typing)", n, lambda: source_table(data, root, None, 0)
        )
        _, pending = _timed(
            "  row checks (labels, keys, paths, root)",
            n,
            lambda: _pending_rows(table, LABELS, allow_outside=False),
        )
        after_files, _ = _timed(
            "  reading + hashing files (one thread)", n, lambda: FileChecker(table).rows(pending)
        )
        before_files, _ = _timed(
            "  files, before: read, hash, decode every file", n, lambda: _files_before(pending)
        )
        cells = [cells["image_path"] for _, _, cells, _ in table.rows]
        base = table.base
        before_paths, _ = _timed(
            "  paths, before: Path.resolve() per row",
            n,
            lambda: [(base / c).resolve() for c in cells],
        )
        resolve = PathResolver(base)
        after_paths, _ = _timed(
            "  paths, now: PathResolver.text", n, lambda: [resolve.text(c) for c in cells]
        )
        print(f"ratio files before / now (cpu):  {before_files / after_files:.1f}")
        print(f"ratio paths before / now (cpu):  {before_paths / after_paths:.1f}")
        print(
            "(the rows link to a few identical images, which are now decoded once; with distinct "
            "images every row also pays the decoding, about the difference of the two file lines)"
        )
    finally:
        if args.folder is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
