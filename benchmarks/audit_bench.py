"""Benchmark of binding rows to the audit chain: what a write and ``audit verify`` cost.

Two measurements, each against a baseline taken in the same run (machines here are
noisy, so only ratios are compared):

- **write**: one answer stored the way ``submit`` stores it (a Core insert of a
  response, its digest read back and recorded in the event) against a write that
  appends the same event and touches no data row. The difference is what binding
  one row costs a rater.
- **verify**: ``audit verify`` over a study of ``--stimuli`` stimuli (three
  ``--png-kb`` KB PNGs and a 64 x 64 attribution each) and ``--responses``
  answers, against a plain scan that reads every column of every bound table
  (blobs included) and hashes nothing. The difference is the digest work.

Run: ``.venv/bin/python benchmarks/audit_bench.py [--stimuli 1800] [--responses 20000]``
(the defaults are a 300-case, 6-arm study read by 20 raters x 1,000 items).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
from sqlalchemy import insert, select

from studyhub.protocol import load_study
from studyhub.store import lifecycle
from studyhub.store.audit import append_event
from studyhub.store.db import Store, open_store
from studyhub.store.models import (
    Arm,
    Assignment,
    Base,
    Case,
    Rater,
    ReadingSession,
    Stimulus,
    Study,
    utcnow,
)
from studyhub.store.rows import BOUND_TABLES, bind_rows
from studyhub.store.studies import register
from studyhub.store.verify import verify_store

ROOT = Path(__file__).resolve().parents[1]
STUDY = "inspection_demo"
RESPONSE = Base.metadata.tables["response"]


def _build(store: Store, n_stimuli: int, n_responses: int, png_kb: int) -> list[int]:
    register(store, load_study(ROOT / "protocols" / "inspection_demo.yaml"), actor="bench")
    rng = np.random.default_rng(0)
    with store.write() as s:
        study = s.get_one(Study, STUDY)
        lifecycle.advance(s, study, "enrolling", actor="bench")
        arms = list(s.scalars(select(Arm).where(Arm.study_id == STUDY)))
        rater = Rater(
            study_id=STUDY,
            name="r",
            role="rater",
            token_hash="x",
            token_hint="x",
            created_at=utcnow(),
        )
        s.add(rater)
        s.flush()
        session = ReadingSession(study_id=STUDY, rater_id=rater.id, number=1)
        s.add(session)
        s.flush()
    n_cases = -(-n_stimuli // len(arms))
    stimuli: list[int] = []
    for start in range(0, n_cases, 50):
        with store.write() as s:
            for c in range(start, min(n_cases, start + 50)):
                case = Case(
                    study_id=STUDY,
                    case_key=f"case{c}",
                    source=f"case{c}.png",
                    image_sha256=f"{c:064d}",
                    label="crack",
                    enrolled_at=utcnow(),
                )
                s.add(case)
                s.flush()
                for arm in arms:
                    if len(stimuli) == n_stimuli:
                        break
                    stim = Stimulus(
                        study_id=STUDY,
                        case_id=case.id,
                        arm_id=arm.id,
                        code=uuid.uuid4().hex[:10].upper(),
                        image_png=rng.bytes(png_kb * 1024),
                        original_png=rng.bytes(png_kb * 1024),
                        overlay_png=rng.bytes(png_kb * 1024),
                        attribution=rng.random((64, 64), dtype=np.float32).tobytes(),
                        provenance={"batch": [f"case{c}"]},
                        created_at=utcnow(),
                    )
                    s.add(stim)
                    s.flush()
                    stimuli.append(stim.id)
            append_event(s, actor="bench", action="explain", study_id=STUDY)
    assignments: list[int] = []
    for start in range(0, n_responses, 1000):
        with store.write() as s:
            rater_id = s.scalar(select(Rater.id))
            session_id = s.scalar(select(ReadingSession.id))
            for i in range(start, min(n_responses, start + 1000)):
                a = Assignment(
                    study_id=STUDY,
                    rater_id=rater_id,
                    session_id=session_id,
                    stimulus_id=stimuli[i % len(stimuli)],
                    position=i + 1,
                    kind="regular",
                    first_served_at=utcnow(),
                )
                s.add(a)
                s.flush()
                assignments.append(a.id)
            append_event(s, actor="bench", action="assign", study_id=STUDY)
    for start in range(0, n_responses, 1000):
        with store.write() as s:
            rater_id = s.scalar(select(Rater.id))
            ids = []
            for a in assignments[start : start + 1000]:
                ids.append(_insert_response(s, a, rater_id))
            append_event(s, actor="bench", action="responses", study_id=STUDY)
    return assignments


def _insert_response(s, assignment_id: int, rater_id: int | None) -> int:  # type: ignore[no-untyped-def]
    rid = s.execute(
        insert(RESPONSE).returning(RESPONSE.c.id),
        {
            "assignment_id": assignment_id,
            "rater_id": rater_id,
            "idempotency_key": uuid.uuid4().hex,
            "answers": {"usefulness": 4, "plausible": "yes"},
            "cue_marks": {"marks": []},
            "time_on_task_ms": 4200,
            "supersedes_id": None,
            "reason": None,
            "submitted_at": utcnow(),
        },
    ).scalar_one()
    bind_rows(s, "response", [rid])
    return int(rid)


def _time(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    """Median seconds of ``fn`` over ``repeat`` calls."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stimuli", type=int, default=1800)
    parser.add_argument("--responses", type=int, default=20_000)
    parser.add_argument("--png-kb", type=int, default=40)
    parser.add_argument("--writes", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(f"sqlite:///{Path(tmp) / 'bench.db'}")
        try:
            t0 = time.perf_counter()
            _build(store, args.stimuli, args.responses, args.png_kb)
            print(
                f"built {args.stimuli} stimuli (3 x {args.png_kb} KB PNGs + a 16 KB map each) "
                f"and {args.responses} answers in {time.perf_counter() - t0:.1f} s"
            )
            # --- one write, as submit does it, against a write with the event alone ---
            extra = _build_extra_assignments(store, 2 * args.writes)
            with store.session() as s:
                rater_id = s.scalar(select(Rater.id))

            def bound_write() -> None:
                with store.write() as s:
                    _insert_response(s, extra.pop(), rater_id)
                    append_event(s, actor="bench", action="response", study_id=STUDY)

            def event_only() -> None:
                with store.write() as s:
                    append_event(s, actor="bench", action="response", study_id=STUDY)

            w_bound = _time(bound_write, args.writes)
            w_event = _time(event_only, args.writes)
            print(
                f"write: one bound answer {w_bound * 1000:.2f} ms, the event alone "
                f"{w_event * 1000:.2f} ms: ratio {w_bound / w_event:.2f} "
                f"(+{(w_bound - w_event) * 1000:.2f} ms per answer)"
            )

            # --- audit verify against a plain scan of the same rows ---
            def scan() -> int:
                n = 0
                with store.snapshot() as s:
                    for name in BOUND_TABLES:
                        table = Base.metadata.tables[name]
                        stmt = select(table).execution_options(yield_per=200)
                        for _row in s.execute(stmt):
                            n += 1
                return n

            def verify() -> None:
                with store.snapshot() as s:
                    report = verify_store(s)
                if not report.ok:
                    raise SystemExit("\n".join(report.render()))

            rows = scan()
            t_scan = _time(scan, 3)
            t_verify = _time(verify, 3)
            size = os.path.getsize(Path(tmp) / "bench.db") / 1e6
            print(
                f"verify: {rows} rows ({size:.0f} MB) in {t_verify:.2f} s, a plain scan "
                f"{t_scan:.2f} s: ratio {t_verify / t_scan:.2f} "
                f"({rows / t_verify:,.0f} rows/s)"
            )
        finally:
            store.dispose()


def _build_extra_assignments(store: Store, n: int) -> list[int]:
    with store.write() as s:
        rater_id = s.scalar(select(Rater.id))
        session_id = s.scalar(select(ReadingSession.id))
        stimulus_id = s.scalar(select(Stimulus.id))
        base = 10_000_000
        ids = []
        for i in range(n):
            a = Assignment(
                study_id=STUDY,
                rater_id=rater_id,
                session_id=session_id,
                stimulus_id=stimulus_id,
                position=base + i,
                kind="regular",
                first_served_at=utcnow(),
            )
            s.add(a)
            s.flush()
            ids.append(a.id)
        append_event(s, actor="bench", action="assign", study_id=STUDY)
    return ids


if __name__ == "__main__":
    main()
