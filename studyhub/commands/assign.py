"""``studyhub assign``: write every rater's reading plan; ``--check`` prints the balance table."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from studyhub.commands.render import plain_console, texts

__all__ = ["register_commands"]


def register_commands(app: typer.Typer, state: Any, out: Console) -> None:
    """Add ``assign`` to the main app."""

    @app.command()
    def assign(
        study: Annotated[str | None, typer.Option("--study", help="Study id.")] = None,
        check: Annotated[
            bool,
            typer.Option(
                "--check",
                help="Print the balance table (names arms: for the study lead only); "
                "write nothing.",
            ),
        ] = False,
    ) -> None:
        """Assign stimuli to raters in reading sessions and open rating (idempotent)."""
        from studyhub.blinding.assign import assign_study, check_study
        from studyhub.store.db import open_store

        store = open_store(state.db, create=False)
        try:
            if check:
                bal, notes = check_study(store, study)
            else:
                report = assign_study(store, study, actor=state.actor)
        finally:
            store.dispose()
        if check:
            table = Table(title="Balance per rater (study lead only: names arms)")
            for col in ("rater", "status", "sessions", *bal.arms):
                table.add_column(col)
            for col in ("catch", "repeat", "training", "min gap"):
                table.add_column(col)
            for row in bal.raters:
                table.add_row(
                    *texts(
                        row.rater,
                        row.status,
                        row.sessions,
                        *(row.reads_per_arm[a] for a in bal.arms),
                        row.catch,
                        row.repeat,
                        row.training,
                        "-" if row.min_gap is None else row.min_gap,
                    )
                )
            # the table is wide (one column per arm): never truncate it to the terminal
            width = max(out.width, 70 + max(len(a) + 3 for a in bal.arms) * len(bal.arms))
            plain_console(width=width, file=out.file, soft_wrap=False).print(table)
            arms = Table(title="Readings per stimulus, per arm")
            for col in ("arm", "stimuli", "min", "mean", "max"):
                arms.add_column(col)
            for a in bal.per_arm:
                arms.add_row(
                    *texts(a.arm, a.stimuli, a.min_reads, f"{a.mean_reads:.2f}", a.max_reads)
                )
            out.print(arms)
            for note in notes:
                out.print(f"note: {note}", markup=False)
            out.print("check only: nothing written", markup=False)
            return
        if report.already_done:
            out.print(
                f"study {report.study_id}: every active rater is already assigned; nothing to do",
                markup=False,
            )
            return
        kinds = ", ".join(f"{n} {k}" for k, n in report.kinds.items())
        out.print(
            f"study {report.study_id}: assigned {len(report.raters)} raters "
            f"({', '.join(report.raters)}), {report.sessions} sessions each, "
            f"{report.assignments} items ({kinds}); design {report.design}",
            markup=False,
        )
        for note in report.notes:
            out.print(f"note: {note}", markup=False)
