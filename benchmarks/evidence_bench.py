"""Benchmark of the end of the pipeline: export, analyze, package and verify of a rated study.

A study of ``--raters`` raters x ``--cases`` cases x the demo protocol's 4 arms is
built in a temporary SQLite store (stimuli inserted directly as small PNGs; every
answer given by scripted raters through the rating service, as the app gives
them), closed, and then each step the study lead waits for is timed against the
statistics it must run, measured in the same run (machines here are noisy, so
only ratios are compared):

- ``criteria``: :func:`studyhub.stats.criteria.evaluate_criteria` alone on the
  analysis frame (the statistical floor of ``analyze``);
- ``export``: the tidy data set read from the store and written as CSV;
- ``analyze``: the whole command (read, data rules, criteria, the run stored);
- ``package``: the evidence package (re-derives the data, writes every file, the
  report's figures and PDF, the zip);
- ``verify``: the offline check of the zip (checksums, chain, rows, re-analysis).

Run: ``.venv/bin/python benchmarks/evidence_bench.py [--raters 12] [--cases 60]``
"""

from __future__ import annotations

import argparse
import hashlib
import io
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from sqlalchemy import select

from studyhub.blinding.assign import assign_study
from studyhub.demo.raters import simulate_ratings
from studyhub.evidence.analyze import analysis_inputs, analyze_study, registered_plan_of
from studyhub.evidence.export import tidy_data, write_tables
from studyhub.evidence.package import build_package
from studyhub.evidence.verify import verify_package
from studyhub.protocol import load_study
from studyhub.rating.accounts import add_rater
from studyhub.stats.criteria import evaluate_criteria
from studyhub.store import lifecycle
from studyhub.store.audit import append_event
from studyhub.store.db import Store, open_store
from studyhub.store.models import Arm, Case, ModelVersion, Prediction, Stimulus, Study, utcnow
from studyhub.store.studies import close, get_study, register, registered_protocol_of

ROOT = Path(__file__).resolve().parents[1]
STUDY = "inspection_demo"
LABELS = ("none", "crack", "scratch", "pit")


def _png(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _build(store: Store, n_raters: int, n_cases: int) -> None:
    register(store, load_study(ROOT / "protocols" / "inspection_demo.yaml"), actor="bench")
    rng = np.random.default_rng(0)
    with store.write() as s:
        study = s.get_one(Study, STUDY)
        lifecycle.advance(s, study, "enrolling", actor="bench")
        now = utcnow()
        mv = ModelVersion(
            study_id=STUDY, entry_point="bench", weights_sha256="0" * 64, created_at=now
        )
        s.add(mv)
        s.flush()
        arms = list(s.scalars(select(Arm).where(Arm.study_id == STUDY).order_by(Arm.id)))
        for c in range(n_cases):
            label = LABELS[c % 4]
            case = Case(
                study_id=STUDY,
                case_key=f"bench-{c:05d}",
                source=f"/bench/{c}.png",
                image_sha256=hashlib.sha256(str(c).encode()).hexdigest(),
                label=label,
                meta={"lighting": "dim" if c % 2 else "bright"},
                enrolled=True,
                enrollment_order=c,
                enrolled_at=now,
            )
            s.add(case)
            s.flush()
            s.add(
                Prediction(
                    case_id=case.id,
                    model_version_id=mv.id,
                    predicted_label=label if rng.random() < 0.85 else LABELS[(c + 1) % 4],
                    probability_raw=0.9,
                    probability_calibrated=float(0.5 + 0.5 * rng.random()),
                    created_at=now,
                )
            )
            for k, arm in enumerate(arms):
                s.add(
                    Stimulus(
                        study_id=STUDY,
                        case_id=case.id,
                        arm_id=arm.id,
                        code=f"B{c:05d}{k}QZ",
                        image_png=_png(10 * c + k),
                        provenance={"arm": arm.arm_key},
                        metrics={"deletion_auc": float(rng.random())},
                        created_at=now,
                    )
                )
        append_event(s, actor="bench", action="bench_setup", study_id=STUDY)
    for i in range(n_raters):
        add_rater(
            store,
            STUDY,
            f"reader_{i}",
            role="rater",
            qualifications={"inspection_years": "5"},
            actor="bench",
        )
    assign_study(store, STUDY, actor="bench")
    simulate_ratings(
        store,
        STUDY,
        seed=1,
        arm_effects={"ig": 1.0, "gradcam": 0.9, "random_map": -0.8, "randomized_model": -0.6},
    )
    close(store, STUDY, actor="bench")


def _timed(fn):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--raters", type=int, default=12)
    parser.add_argument("--cases", type=int, default=60)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(f"sqlite:///{tmp}/bench.db")
        (_, setup) = _timed(lambda: _build(store, args.raters, args.cases))
        with store.snapshot() as s:
            study = get_study(s, STUDY)
            protocol = registered_protocol_of(s, study)
            plan = registered_plan_of(study)
            tidy = tidy_data(s, study, protocol, unblinded=True)
        frame = analysis_inputs(tidy, protocol, plan)["frame"]
        n_reads = int((tidy.answers["kind"] == "read").sum() / len(protocol.instrument.items))

        def criteria() -> object:
            return evaluate_criteria(
                frame,
                plan=plan,
                truth="truth",
                repeat="repeat",
                seed=protocol.seed,
                label="label",
                prediction="predicted",
                classes=list(protocol.data.labels),
            )

        def export() -> object:
            with store.snapshot() as s:
                st = get_study(s, STUDY)
                data = tidy_data(s, st, registered_protocol_of(s, st), unblinded=False)
            return write_tables(data, Path(tmp) / "export")

        _, t_criteria = _timed(criteria)
        _, t_export = _timed(export)
        _, t_analyze = _timed(
            lambda: analyze_study(store, STUDY, actor="bench", reason="benchmark")
        )
        pkg, t_package = _timed(
            lambda: build_package(store, STUDY, Path(tmp) / "out", actor="bench")
        )
        report, t_verify = _timed(lambda: verify_package(pkg.zip_path))
        store.dispose()
    if not report.ok:
        raise SystemExit("the benchmark's package does not verify: " + "; ".join(report.problems))
    print(
        f"study: {args.raters} raters x {args.cases} cases x 4 arms, {n_reads} readings "
        f"answered through the rating service (setup {setup:.1f} s); package {pkg.files} files"
    )
    print(f"{'step':<10} {'seconds':>8} {'x criteria':>11}")
    for name, t in (
        ("criteria", t_criteria),
        ("export", t_export),
        ("analyze", t_analyze),
        ("package", t_package),
        ("verify", t_verify),
    ):
        print(f"{name:<10} {t:8.2f} {t / t_criteria:11.2f}")


if __name__ == "__main__":
    main()
