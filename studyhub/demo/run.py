"""The demo study, end to end.

register -> sample (retrospective, with the sampling report) -> explain (every
arm for every case) -> raters and assignment -> scripted raters answer every
item through the service layer -> close -> analyze (unblinding, the registered
plan) -> package -> verify the package offline -> the audit check (the chain
and every row). Reruns skip finished steps.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.text import Text

from studyhub.errors import InputError, StoreError
from studyhub.protocol.load import load_study
from studyhub.store.db import Store, open_store
from studyhub.store.studies import register, status
from studyhub.store.verify import verify_store

__all__ = ["DEMO_PROTOCOL", "run_demo"]

#: The shipped example protocol (its plan lies in ../analysis/).
DEMO_PROTOCOL = Path(__file__).resolve().parents[2] / "protocols" / "inspection_demo.yaml"


#: The demo's simulated raters and how much each arm helps them (latent Likert points).
DEMO_RATERS = tuple(f"engineer_{i}" for i in range(1, 7))
DEMO_ARM_EFFECTS = {"ig": 1.0, "gradcam": 0.9, "random_map": -0.8, "randomized_model": -0.6}


def run_demo(out_dir: Path, *, console: Console, protocol: Path = DEMO_PROTOCOL) -> None:
    """Run the demo study in ``out_dir`` from registration to a verified evidence package."""
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
    console.print(f"[1/9] protocol {files.protocol.id} and plan {files.plan.id} are valid")
    store = open_store(f"sqlite:///{out_dir / 'studyhub.db'}")
    try:
        reg = register(store, files, actor="demo")
        verb = "registered" if reg.created else "already registered"
        console.print(f"[2/9] study {reg.study_id} {verb}: hash {reg.registration_hash}")
        before = status(store, reg.study_id)
        if before.state in ("registered", "enrolling"):
            sampled = sample_retrospective(store, reg.study_id, data_dir=data_dir, actor="demo")
            verb = "already enrolled" if sampled.already_done else "enrolled"
            console.print(f"[3/9] {len(sampled.enrolled)} cases {verb}")
            print_sampling_report(sampled.report, console)
            with console.status(Text("[4/9] explaining every arm for every case ...")):
                summary = explain_study(store, reg.study_id, data_dir=data_dir, actor="demo")
            console.print(
                f"[4/9] {summary.computed} stimuli computed in {summary.seconds:.0f} s "
                f"({summary.existing} existed)"
            )
        else:  # rating has begun: enrollment and the stimuli are final
            console.print(f"[3/9] {before.counts['cases enrolled']} cases already enrolled")
            console.print(f"[4/9] 0 stimuli computed in 0 s ({before.counts['stimuli']} existed)")
        _rate_and_close(store, reg.study_id, console)
        package = _analyze_and_package(store, reg.study_id, out_dir, data_dir, console)
        st = status(store, reg.study_id)
        with store.snapshot() as s:
            audit = verify_store(s)
    finally:
        store.dispose()
    console.print(f"state {st.state}; {st.counts['stimuli']} stimuli")
    for line in audit.render():
        console.print(line)
    console.print(f"database: {out_dir / 'studyhub.db'}")
    console.print(f"report: {package / 'report' / 'report.html'}")
    console.print(f"evidence package: {package}.zip (check it with: studyhub verify {package}.zip)")


def _rate_and_close(store: Store, study_id: str, console: Console) -> None:
    """Add the demo's raters, assign them, let them rate through the service layer, close."""
    from studyhub.blinding.assign import assign_study
    from studyhub.demo.raters import simulate_ratings
    from studyhub.rating.accounts import add_rater, list_raters
    from studyhub.store.studies import close

    state = status(store, study_id).state
    if state == "enrolling":
        known = {r.name for r in list_raters(store, study_id)}
        for name in DEMO_RATERS:
            if name not in known:
                add_rater(
                    store,
                    study_id,
                    name,
                    role="rater",
                    qualifications={"inspection_years": "5"},
                    actor="demo",
                )
        report = assign_study(store, study_id, actor="demo")
        console.print(
            f"[5/9] {len(DEMO_RATERS)} raters assigned: {report.assignments} items in "
            f"{report.sessions} sessions each"
        )
        state = "rating"
    else:
        console.print("[5/9] raters already assigned")
    if state == "rating":
        with console.status(Text("[6/9] scripted raters answer every item ...")):
            sim = simulate_ratings(store, study_id, seed=7, arm_effects=DEMO_ARM_EFFECTS)
        console.print(
            f"[6/9] {sim.answers} answers ({sim.corrections} corrected, {sim.catch_failures} "
            "attention checks failed) through the service layer"
        )
        close(store, study_id, actor="demo")
        console.print("[7/9] rating closed")
    else:
        console.print("[6/9] already rated; [7/9] already closed")


def _analyze_and_package(
    store: Store, study_id: str, out_dir: Path, data_dir: Path, console: Console
) -> Path:
    """Unblind and analyze (once), write the evidence package, verify it offline."""
    from studyhub.commands.criteria_table import print_criteria
    from studyhub.evidence.analyze import analyze_study
    from studyhub.evidence.package import build_package
    from studyhub.evidence.verify import verify_package

    if status(store, study_id).state == "closed":
        with console.status(Text("[8/9] unblinding and analysing ...")):
            outcome = analyze_study(
                store,
                study_id,
                actor="demo",
                reason="demo: primary analysis per the registered plan",
                data_dir=data_dir,
            )
        console.print(f"[8/9] analysis run {outcome.run_id} against the registered plan")
        print_criteria(outcome.results["criteria"], console)
    else:
        console.print("[8/9] already analysed")
    with console.status(Text("[9/9] writing and verifying the evidence package ...")):
        built = build_package(store, study_id, out_dir, actor="demo", data_dir=data_dir)
        checked = verify_package(built.zip_path)
    console.print(f"[9/9] evidence package {built.zip_path} ({built.files} files)")
    for line in checked.render():
        console.print(line, markup=False)
    if not checked.ok:
        raise StoreError("internal: the demo's own evidence package does not verify")
    return built.folder
