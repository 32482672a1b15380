"""The demo study, end to end as far as the pipeline goes today.

register -> sample (retrospective, with the sampling report) -> explain (every
arm for every case) -> status and the audit check (the chain and every row).
Reruns skip finished steps.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.text import Text

from studyhub.errors import InputError
from studyhub.protocol.load import load_study
from studyhub.store.db import open_store
from studyhub.store.studies import register, status
from studyhub.store.verify import verify_store

__all__ = ["DEMO_PROTOCOL", "run_demo"]

#: The shipped example protocol (its plan lies in ../analysis/).
DEMO_PROTOCOL = Path(__file__).resolve().parents[2] / "protocols" / "inspection_demo.yaml"


def run_demo(out_dir: Path, *, console: Console, protocol: Path = DEMO_PROTOCOL) -> None:
    """Register, sample and explain the demo study in ``out_dir``, then report."""
    from studyhub.cases.enroll import sample_retrospective
    from studyhub.commands.cases import print_sampling_report
    from studyhub.explain.pipeline import explain_study

    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(
            f"cannot create the demo folder {str(out_dir)!r} ({exc.strerror}); give --out a "
            "folder you can write to"
        ) from None
    data_dir = out_dir / "data"
    files = load_study(protocol)
    console.print(f"[1/4] protocol {files.protocol.id} and plan {files.plan.id} are valid")
    store = open_store(f"sqlite:///{out_dir / 'studyhub.db'}")
    try:
        reg = register(store, files, actor="demo")
        verb = "registered" if reg.created else "already registered"
        console.print(f"[2/4] study {reg.study_id} {verb}: hash {reg.registration_hash}")
        sampled = sample_retrospective(store, reg.study_id, data_dir=data_dir, actor="demo")
        verb = "already enrolled" if sampled.already_done else "enrolled"
        console.print(f"[3/4] {len(sampled.enrolled)} cases {verb}")
        print_sampling_report(sampled.report, console)
        with console.status(Text("[4/4] explaining every arm for every case ...")):
            summary = explain_study(store, reg.study_id, data_dir=data_dir, actor="demo")
        console.print(
            f"[4/4] {summary.computed} stimuli computed in {summary.seconds:.0f} s "
            f"({summary.existing} existed)"
        )
        st = status(store, reg.study_id)
        with store.snapshot() as s:
            audit = verify_store(s)
    finally:
        store.dispose()
    console.print(f"state {st.state}; {st.counts['stimuli']} stimuli")
    for line in audit.render():
        console.print(line)
    console.print(f"database: {out_dir / 'studyhub.db'}")
    console.print(
        "next (coming): assign raters and serve the blinded rating app, then analyze and package"
    )
