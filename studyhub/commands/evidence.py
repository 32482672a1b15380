"""``studyhub export | analyze | package | verify``: from ratings to a verifiable verdict."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

__all__ = ["register_commands"]

StudyOpt = Annotated[
    str | None, typer.Option("--study", help="Study id (needed when the database holds several).")
]
DataOpt = Annotated[
    Path | None,
    typer.Option(
        "--data",
        help="Folder of the study's data (the demo's generated images; a manifest's files): "
        "for the region under each cue mark. Without it regions are left empty.",
    ),
]


def register_commands(app: typer.Typer, state: Any, out: Console) -> None:
    """Add ``export``, ``analyze``, ``package`` and ``verify`` to the main app."""

    @app.command()
    def export(
        out_dir: Annotated[Path, typer.Option("--out", help="Folder to write the tables into.")],
        study: StudyOpt = None,
        data: DataOpt = None,
        fmt: Annotated[
            str,
            typer.Option("--format", help="csv, parquet or both (with a data dictionary)."),
        ] = "csv",
    ) -> None:
        """Write the tidy analysis data set: one row per effective answer, with a data dictionary.

        Before unblinding (until ``studyhub analyze``) it holds only what a monitor may
        see: arms appear as opaque stimulus codes and there is no table of cases.
        """
        from studyhub.commands.outputs import writable_folder
        from studyhub.errors import InputError
        from studyhub.evidence.analyze import load_masks, marked_case_keys
        from studyhub.evidence.export import tidy_data, write_tables
        from studyhub.store.db import open_store
        from studyhub.store.studies import get_study, registered_protocol_of

        formats = {"csv": ("csv",), "parquet": ("parquet",), "both": ("csv", "parquet")}
        if fmt not in formats:
            raise InputError(f"--format {fmt!r} is not known; use csv, parquet or both")
        writable_folder(out_dir, option="--out")
        store = open_store(state.db, create=False)
        try:
            with store.snapshot() as s:
                row = get_study(s, study)
                protocol = registered_protocol_of(s, row)
                unblinded = row.unblinded_at is not None
                masks = (
                    load_masks(protocol, row, data, marked_case_keys(s, row.id))
                    if unblinded
                    else None
                )
                tidy = tidy_data(s, row, protocol, unblinded=unblinded, masks=masks)
        finally:
            store.dispose()
        written = write_tables(tidy, out_dir, formats[fmt])
        view = "unblinded" if unblinded else "blinded (monitor view: arms as opaque codes)"
        out.print(
            f"study {tidy.study_id}: {len(tidy.answers)} answers, {len(tidy.marks)} cue marks, "
            f"{len(tidy.missing)} readings without an answer; {view}",
            markup=False,
        )
        for path in written:
            out.print(f"wrote {path}", markup=False)

    @app.command()
    def analyze(
        reason: Annotated[
            str,
            typer.Option("--reason", help="Why the study is unblinded now (for the audit log)."),
        ],
        study: StudyOpt = None,
        data: DataOpt = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
    ) -> None:
        """Unblind a closed study and evaluate its registered plan; store the analysis run.

        Refuses unless the study is closed (or analysed) and its stored protocol and
        plan re-hash to their registration. The first run records the unblinding
        (actor, time, reason); every run is stored with the plan hash, the data's
        digest, the software versions and its results, which are the same each time.
        """
        import json

        from studyhub.commands.criteria_table import print_criteria
        from studyhub.evidence.analyze import analyze_study
        from studyhub.store.db import open_store

        store = open_store(state.db, create=False)
        try:
            with out.status("unblinding and evaluating the registered plan ..."):
                outcome = analyze_study(
                    store, study, actor=state.actor, reason=reason, data_dir=data
                )
        finally:
            store.dispose()
        res = outcome.results
        if as_json:
            out.print(json.dumps(res, indent=2, sort_keys=True), markup=False, soft_wrap=True)
            return
        what = "unblinded and analysed" if outcome.unblinded_now else "analysed again"
        out.print(
            f"study {outcome.study_id} {what}: analysis run {outcome.run_id}, plan "
            f"{res['plan_hash'][:12]}…, data {res['data_digest'][:12]}…",
            markup=False,
        )
        print_criteria(res["criteria"], out)
        devs = res["deviations"]
        out.print(f"{len(devs)} deviation(s)", markup=False)
        for d in devs[:20]:
            who = ", ".join(x for x in (d["rater"], d["case"]) if x)
            out.print(f"- {d['kind']} ({who}): {d['detail']}", markup=False)
        if len(devs) > 20:
            out.print(f"- ... and {len(devs) - 20} more (studyhub package lists all)", markup=False)

    @app.command()
    def package(
        out_dir: Annotated[
            Path, typer.Option("--out", help="Folder to write the package folder and zip into.")
        ],
        study: StudyOpt = None,
        data: DataOpt = None,
    ) -> None:
        """Write the evidence package of an analysed study: a folder and its zip.

        It holds the registered protocol and plan, amendments, the sampling report,
        explanation provenance, the stimuli, the de-identified data with its
        dictionary, the audit chain with the rows it binds, the analysis run, the
        report (HTML and PDF), the environment, SHA256SUMS and RO-Crate metadata.
        Give the same --data as to analyze when the study has cue marks.
        """
        from studyhub.commands.outputs import writable_folder
        from studyhub.evidence.package import build_package
        from studyhub.store.db import open_store

        writable_folder(out_dir, option="--out")
        store = open_store(state.db, create=False)
        try:
            with out.status("writing the evidence package (data, audit rows, report, zip) ..."):
                res = build_package(store, study, out_dir, actor=state.actor, data_dir=data)
        finally:
            store.dispose()
        out.print(
            f"study {res.study_id}: evidence package of {res.files} files written to "
            f"{res.folder} and {res.zip_path} (SHA256SUMS {res.sums_sha256[:12]}…)",
            markup=False,
        )
        out.print(f"check it anywhere with: studyhub verify {res.zip_path}", markup=False)

    @app.command()
    def verify(
        package_path: Annotated[
            Path, typer.Argument(help="An evidence package: its folder or its .zip.")
        ],
    ) -> None:
        """Check an evidence package offline: checksums, audit chain and rows, registration,
        and the analysis re-run from the packaged data. Exit 0 when all holds, 2 otherwise.
        """
        from studyhub.evidence.verify import verify_package

        with out.status("checking checksums, the audit chain and rows, re-running the analysis"):
            report = verify_package(package_path)
        for line in report.render():
            out.print(line, markup=False, soft_wrap=True)
        if not report.ok:
            raise typer.Exit(2)
