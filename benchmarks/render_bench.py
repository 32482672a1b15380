"""Benchmark of rendering + narrative per stimulus on the demo, against the 25 ms goal.

What ``explain`` does for every stimulus after the attribution, timed alone: the
three PNGs (:func:`studyhub.explain.compute.render_views`: stimulus, plain
original, overlay layer) and the narrative (:func:`studyhub.explain.narrative.narrate`,
with the case's mask, the protocol's terms and the uncertainty map), with the demo
protocol's ``rendering:`` and ``cues:`` settings (canvas 448 px) on the demo
model's test images and real maps of its arms (Integrated Gradients with the
protocol's 32 steps, Grad-CAM, the random control), computed before the clock
starts. Per part (rendering without encoding, PNG encoding, narrative) and in
total, the best of ``--repeats`` passes over all stimuli, in milliseconds per
stimulus of wall and of this process's CPU time (other processes on a shared
machine inflate the wall time), and the total's ratio to the goal measured in
the same run, with the load average it ran under.

Run: ``.venv/bin/python benchmarks/render_bench.py [--cases 16] [--repeats 5]``.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from studyhub.demo.model import LAST_CONV, load
from studyhub.demo.synth import CLASS_NAMES, generate
from studyhub.explain.arms import build_arm
from studyhub.explain.compute import render_views
from studyhub.explain.narrative import narrate
from studyhub.explain.png import encode_png
from studyhub.explain.render import render_arrays
from studyhub.explain.uncertainty import attribution_uncertainty
from studyhub.protocol.load import load_protocol

__all__ = ["GOAL_MS", "main"]

GOAL_MS = 25.0
"""Rendering + narrative of one stimulus, in milliseconds (issue 13)."""

PROTOCOL = Path(__file__).resolve().parents[1] / "protocols" / "inspection_demo.yaml"
ARMS = {"ig": ("integrated_gradients", {"n_steps": 32}), "gradcam": ("gradcam", {})}


def _best(k: int, work: Callable[[], object]) -> tuple[float, float]:
    """Best wall and best CPU (this process) seconds of ``k`` runs after a warm-up."""
    work()
    wall, cpu = [], []
    for _ in range(k):
        start, start_cpu = time.perf_counter(), time.process_time()
        work()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return min(wall), min(cpu)


def main() -> None:
    """Print ms per stimulus per part and the total's ratio to :data:`GOAL_MS`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    protocol, _ = load_protocol(PROTOCOL)
    model, preprocess = load()
    cases = generate(args.cases, split="test", seed=0)
    x = torch.stack([preprocess(c.image) for c in cases])
    target = torch.tensor([CLASS_NAMES.index(c.label) for c in cases])
    stimuli = []
    for method, params in ARMS.values():
        arm = build_arm(method, model, params, target_layer=LAST_CONV, preprocess=preprocess)
        maps = arm.attribute(x, target).detach().sum(dim=1).numpy()
        unc = attribution_uncertainty(arm, x, target, n_samples=2).detach().numpy()
        stimuli += list(zip(cases, maps, unc, strict=True))
    rng = np.random.default_rng(0)
    stimuli += [(c, rng.random(c.image.shape[:2]), None) for c in cases]  # the random control
    terms = dict(protocol.data.label_terms)
    region_terms = {v: terms.get(n, n) for v, n in protocol.data.mask_labels.items()}
    markers = [v for v, n in protocol.data.mask_labels.items() if n in protocol.data.marker_regions]
    settings = protocol.rendering
    unc_shown = protocol.cues.show_uncertainty

    def views() -> None:
        for case, attr, unc in stimuli:
            render_views(protocol, case.image, attr, unc if unc_shown else None)

    arrays = [
        render_arrays(case.image, a, settings, uncertainty=u, cues=protocol.cues)
        for case, a, u in stimuli
    ]

    def pixels() -> None:
        for case, attr, unc in stimuli:
            render_arrays(case.image, attr, settings, uncertainty=unc, cues=protocol.cues)

    def encode() -> None:
        for canvas in arrays:
            encode_png(canvas)

    def stories() -> None:
        for case, attr, unc in stimuli:
            narrate(
                attr,
                case.mask,
                region_terms=region_terms,
                label_terms=terms,
                marker_labels=markers,
                uncertainty=unc,
                highlight_percent=settings.top_k_percent or 10.0,
            )

    def both() -> None:
        views()
        stories()

    n = len(stimuli)
    parts = {
        "stimulus pixels (render_arrays)": pixels,
        "one PNG encoding (encode_png)": encode,
        "narrative (narrate)": stories,
        "three PNGs (render_views)": views,
    }
    print(
        f"{n} stimuli ({len(cases)} demo test images x {len(ARMS) + 1} arms), canvas "
        f"{settings.canvas_px} px, interpolation {settings.interpolation}, best of {args.repeats}"
    )
    print(f"  {'part':34s} {'wall':>7s} {'CPU':>7s}  (ms per stimulus)")
    for name, work in parts.items():
        wall, cpu = _best(args.repeats, work)
        print(f"  {name:34s} {wall / n * 1000:7.2f} {cpu / n * 1000:7.2f}")
    wall, cpu = _best(args.repeats, both)
    total, total_cpu = wall / n * 1000, cpu / n * 1000
    print(
        f"  {'rendering + narrative':34s} {total:7.2f} {total_cpu:7.2f}  -> "
        f"{total / GOAL_MS:.2f}x the {GOAL_MS:g} ms goal (wall; CPU {total_cpu / GOAL_MS:.2f}x); "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )


if __name__ == "__main__":
    main()
