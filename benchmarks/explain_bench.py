"""Benchmark of the gradient arms on the demo model: cost per stimulus against the raw passes.

For each gradient arm, the time of ``arm.attribute`` on a batch of demo images
(best of k) is compared with what the method mathematically needs:
``gradient_passes(batch)`` plain forward+backward passes, priced by timing one
plain forward+backward pass on a batch of the same size in the same run (best
of k, the two timed in alternation so a burst of load from other processes
does not land on one side only). A ratio of 1.0 means no overhead beyond the
passes themselves; the goal is <= 1.2.

Run: ``.venv/bin/python benchmarks/explain_bench.py [--batch 32] [--repeats 5]``.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

import torch

from studyhub.demo.model import LAST_CONV, load
from studyhub.demo.synth import CLASS_NAMES, generate
from studyhub.explain.arms import Arm, build_arm

__all__ = ["ARMS", "best_of", "best_of_alternating", "main"]

ARMS: dict[str, dict[str, Any]] = {
    "integrated_gradients": {"n_steps": 32},
    "saliency": {},
    "smoothgrad": {"nt_samples": 25},
    "gradient_shap": {"n_samples": 25},
    "deeplift": {},
    "gradcam": {},
    "guided_gradcam": {},
}
"""Arms and the parameters benchmarked (the demo protocol's n_steps; defaults otherwise)."""

GOAL = 1.2


def best_of(k: int, work: Callable[[], object]) -> float:
    """Best wall time in seconds of ``k`` runs of ``work`` after one warm-up run."""
    work()
    times = []
    for _ in range(k):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def best_of_alternating(
    k: int, reference: Callable[[], object], work: Callable[[], object]
) -> tuple[float, float]:
    """Best times of ``reference`` and ``work``, timed in turn ``k`` times after a warm-up.

    Alternating keeps a burst of load from other processes from landing on one
    side only; each side takes its best of three per round.
    """
    reference()
    work()
    ref, out = [], []
    for _ in range(k):
        ref.append(best_of(3, reference))
        start = time.perf_counter()
        work()
        out.append(time.perf_counter() - start)
    return min(ref), min(out)


def main(argv: list[str] | None = None) -> None:
    """Print the benchmark table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32, help="demo images per batch")
    parser.add_argument("--repeats", type=int, default=5, help="k of best-of-k")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    model, preprocess = load()
    cases = generate(args.batch, split="test", seed=0)
    x = torch.stack([preprocess(c.image) for c in cases])
    t = torch.tensor([CLASS_NAMES.index(c.label) for c in cases])

    def forward_backward() -> None:
        inputs = x.detach().clone().requires_grad_(True)
        torch.autograd.grad(model(inputs).gather(1, t[:, None]).sum(), inputs)

    print(
        f"torch {torch.__version__}, {args.threads} threads, batch {args.batch} demo images, "
        f"best of {args.repeats}, pass and arm timed in alternation"
    )
    header = (
        f"{'arm':22s} {'ms/stimulus':>11s} {'passes/stim':>11s} {'1 pass ms':>9s} "
        f"{'pass-bound ms/stim':>18s} {'ratio':>6s}  goal<={GOAL}"
    )
    print(header)
    print("-" * len(header))
    for method, params in ARMS.items():
        arm = build_arm(method, model, params, target_layer=LAST_CONV, preprocess=preprocess)

        def work(arm: Arm = arm) -> None:
            arm.attribute(x, t, seed=0)

        pass_s, arm_s = best_of_alternating(args.repeats, forward_backward, work)
        passes = arm.gradient_passes(args.batch)
        bound = pass_s * passes / args.batch
        ratio = arm_s / bound
        print(
            f"{method:22s} {arm_s / args.batch * 1e3:11.3f} {passes / args.batch:11.0f} "
            f"{pass_s * 1e3:9.2f} {bound / args.batch * 1e3:18.3f} {ratio:6.2f}  "
            f"{'yes' if ratio <= GOAL else 'NO'}"
        )


if __name__ == "__main__":
    main()
