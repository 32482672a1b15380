"""Benchmark of the gradient arms on the demo model: cost per stimulus against the raw passes.

For each gradient arm, the time of ``arm.attribute`` on a batch of demo images
(best of k) is compared with what the method mathematically needs:
``gradient_passes(batch)`` plain forward+backward passes, priced by timing one
plain forward+backward pass on a batch of the same size in the same run (best
of k, the two timed in alternation so a burst of load from other processes
does not land on one side only). A ratio of 1.0 means no overhead beyond the
passes themselves; the goal is <= 1.2.

The second table times the whole stimulus step per arm of the demo protocol
(:func:`~studyhub.explain.compute.compute_stimuli`: attribution, uncertainty,
rendering, narrative, cue, provenance; what ``explain_study`` does per batch but
the database write) and the metrics step per arm
(:func:`~studyhub.explain.metrics_step.batch_metrics`, with the protocol's
``metrics`` settings and with ``preset: full``) against the raw passes those
settings require, priced by a forward+backward pass and a forward pass of the
same batch timed in the same run. Floors (issue 13): stimulus step <= 1.3x for
every gradient arm, metrics step <= 1.5x.

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
from studyhub.explain.metrics_step import RANDOMIZABLE

__all__ = ["ARMS", "best_of", "best_of_alternating", "main", "pipeline"]

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
STIMULUS_FLOOR = 1.3
METRICS_FLOOR = 1.5


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
    parser.add_argument(
        "--pipeline-batch", type=int, default=16, help="cases per batch of the pipeline table"
    )
    parser.add_argument("--skip-arms", action="store_true", help="only the pipeline table")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    if args.skip_arms:
        pipeline(args.pipeline_batch, args.repeats)
        return
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
    pipeline(args.pipeline_batch, args.repeats)


def _ratio(seconds: float, bound: float, floor: float) -> str:
    if bound <= 0:
        return f"{'-':>6s}  (no passes)"
    ratio = seconds / bound
    return f"{ratio:6.2f}  {'yes' if ratio <= floor else 'NO'} (<= {floor})"


def pipeline(batch: int, repeats: int) -> None:
    """Print the stimulus-step and metrics-step table of the demo protocol's arms."""
    import numpy as np

    from studyhub.demo.run import DEMO_PROTOCOL
    from studyhub.explain.compute import CaseInput, compute_stimuli
    from studyhub.explain.metrics_step import batch_metrics, wanted_groups
    from studyhub.protocol.load import load_study
    from studyhub.protocol.metric_settings import PRESETS

    protocol = load_study(DEMO_PROTOCOL).protocol
    model, preprocess = load()
    samples = generate(batch, split="test", seed=1)
    x = torch.stack([preprocess(c.image) for c in samples])
    with torch.no_grad():
        probs = torch.softmax(model(x), dim=1)
    predicted = probs.argmax(dim=1)
    cases = [
        CaseInput(
            case_key=c.case_id,
            image=c.image,
            image_sha256=f"{i:064d}",
            mask=c.mask,
            target=int(predicted[i]),
            target_label=protocol.data.labels[int(predicted[i])],
            probability=float(probs[i, predicted[i]]),
        )
        for i, c in enumerate(samples)
    ]
    t = predicted

    def forward_backward() -> None:
        inputs = x.detach().clone().requires_grad_(True)
        torch.autograd.grad(model(inputs).gather(1, t[:, None]).sum(), inputs)

    def forward() -> None:
        with torch.no_grad():
            model(x)

    # A forward pass priced in forward+backward passes, measured back to back: the metrics
    # step is timed in alternation with a forward pass and its gradient passes priced by this.
    fwd_s, fb_s = best_of_alternating(repeats, forward, forward_backward)
    fb_per_fwd = fb_s / fwd_s
    unc = protocol.cues.uncertainty_samples if protocol.cues.show_uncertainty else 0
    print()
    print(
        f"pipeline, demo protocol settings: batch {batch}, uncertainty samples {unc}, "
        f"1 forward pass of the batch {fwd_s * 1e3:.2f} ms, 1 forward+backward pass "
        f"{fb_s * 1e3:.2f} ms"
    )
    header = (
        f"{'arm':18s} {'part':22s} {'ms/stimulus':>11s} {'fb passes':>9s} {'fwd passes':>10s} "
        f"{'pass-bound ms/stim':>18s} {'ratio':>6s}"
    )
    print(header)
    print("-" * (len(header) + 16))
    settings = {
        "metrics (protocol)": protocol.metrics.plan(),
        "metrics (full)": PRESETS["full"],
    }
    for spec in protocol.arms:
        arm = build_arm(
            spec.method, model, spec.params, target_layer=LAST_CONV, preprocess=preprocess
        )

        def stimuli(spec: Any = spec) -> list[Any]:
            return compute_stimuli(
                protocol=protocol,
                arm_key=spec.id,
                method=spec.method,
                params=spec.params,
                model=model,
                preprocess=preprocess,
                weights_sha256="0" * 64,
                entry_point="studyhub.demo.model:load",
                cases=cases,
            )

        pass_s, step_s = best_of_alternating(repeats, forward_backward, stimuli)
        fb = 0.0
        if arm.produces_map:
            fb = arm.gradient_passes(batch) / batch + (
                arm.gradient_passes(batch * unc) / batch if unc else 0.0
            )
        bound = pass_s * fb
        print(
            f"{spec.id:18s} {'stimulus step':22s} {step_s / batch * 1e3:11.2f} {fb:9.1f} "
            f"{0:10d} {bound / batch * 1e3:18.3f} {_ratio(step_s, bound, STIMULUS_FLOOR)}"
        )
        outputs = stimuli()
        if outputs[0].attribution is None:
            continue
        maps = np.stack([o.attribution for o in outputs])
        seeds = [o.seed for o in outputs]
        for part, plan in settings.items():
            groups = wanted_groups(plan, protocol)

            def metrics(
                groups: Any = groups, spec: Any = spec, maps: Any = maps, seeds: Any = seeds
            ) -> None:
                batch_metrics(
                    protocol=protocol,
                    method=spec.method,
                    params=spec.params,
                    model=model,
                    preprocess=preprocess,
                    cases=cases,
                    attributions=maps,
                    seeds=seeds,
                    groups=groups,
                )

            fwd_now, metrics_s = best_of_alternating(repeats, forward, metrics)
            gp = arm.gradient_passes(batch) / batch
            fwd = 2 * (plan.curve_steps + 1) if "curves" in groups else 0
            grads = 0.0
            if "infidelity" in groups:
                fwd += plan.infidelity_samples + 1
                grads += gp
            if "max_sensitivity" in groups:
                grads += gp + arm.gradient_passes(batch * plan.sensitivity_samples) / batch
            if "randomization" in groups and spec.method in RANDOMIZABLE:
                grads += gp
            bound = fwd_now * (fwd + grads * fb_per_fwd)
            print(
                f"{spec.id:18s} {part:22s} {metrics_s / batch * 1e3:11.2f} {grads:9.1f} "
                f"{fwd:10d} {bound / batch * 1e3:18.3f} {_ratio(metrics_s, bound, METRICS_FLOOR)}"
            )


if __name__ == "__main__":
    main()
