"""``studyhub explain``: compute, render and store every stimulus; ``--metrics`` adds the
quantitative metrics afterwards; ``--verify N`` rechecks."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from studyhub.cluster import dask_client
from studyhub.commands.cases import DataDirOption, _data_dir, progress_bar
from studyhub.commands.cluster import SchedulerOption, WorkersOption
from studyhub.commands.render import texts
from studyhub.errors import InputError

__all__ = ["register_commands"]


def register_commands(app: typer.Typer, state: Any, out: Console) -> None:
    """Add ``explain`` to the main app."""

    @app.command()
    def explain(
        study: Annotated[str | None, typer.Option("--study", help="Study id.")] = None,
        device: Annotated[
            str, typer.Option("--device", help="cpu (default) or cuda / cuda:N.")
        ] = "cpu",
        batch_size: Annotated[
            int, typer.Option("--batch-size", min=1, max=1024, help="Cases per batch.")
        ] = 16,
        verify: Annotated[
            int | None,
            typer.Option("--verify", min=1, help="Recompute N random stored stimuli and compare."),
        ] = None,
        metrics: Annotated[
            bool,
            typer.Option(
                "--metrics",
                help="Compute the quantitative metrics of the stored stimuli (the protocol's "
                "metrics section; only missing or changed ones), after explain.",
            ),
        ] = False,
        data_dir: DataDirOption = None,
        workers: WorkersOption = None,
        scheduler: SchedulerOption = None,
    ) -> None:
        """Generate every arm for every enrolled case (idempotent), or verify stored ones."""
        from studyhub.explain.metrics_step import compute_metrics
        from studyhub.explain.pipeline import explain_study, verify_stimuli
        from studyhub.store.db import open_store

        on_cluster = workers is not None or scheduler is not None
        if verify is not None and on_cluster:
            raise InputError(
                f"--verify {verify} recomputes stimuli on this machine; drop --workers / "
                "--scheduler (or run explain on the cluster without --verify)"
            )
        if metrics and on_cluster:
            raise InputError(
                "--metrics runs on this machine; drop --workers / --scheduler (explain runs on "
                "the cluster, its metrics step does not yet)"
            )
        store = open_store(state.db, create=False)
        try:
            if verify is not None:
                report = verify_stimuli(
                    store, study, verify, data_dir=_data_dir(data_dir), device=device
                )
                table = Table(title=f"Recomputed {report.checked} stimuli")
                shown = ("stimulus", "method", "deterministic", "match", "detail")
                for col in shown:
                    table.add_column(col)
                for row in report.rows:
                    table.add_row(*texts(*(row[c] for c in shown)))
                out.print(table)
                for row in report.rows:
                    if not row["match"]:
                        out.print(f"MISMATCH {row['stimulus']}: {row['detail']}", markup=False)
                out.print(
                    f"verify: {report.matched} of {report.checked} match",
                    markup=False,
                )
                if not report.ok:
                    raise typer.Exit(1)
                return
            if metrics:
                with progress_bar(unit="stimuli") as progress:
                    done = compute_metrics(
                        store,
                        study,
                        data_dir=_data_dir(data_dir),
                        actor=state.actor,
                        device=device,
                        batch_size=batch_size,
                        progress=_labelled("metrics", progress),
                    )
                out.print(
                    f"study {done.study_id}: computed metrics of {done.computed} stimuli in "
                    f"{done.seconds:.1f} s ({done.current} were current; "
                    f"{', '.join(done.groups) or 'none switched on'})",
                    markup=False,
                )
                return
            with progress_bar(unit="stimuli") as progress, ExitStack() as stack:
                client = (
                    stack.enter_context(dask_client(scheduler, workers)) if on_cluster else None
                )
                summary = explain_study(
                    store,
                    study,
                    data_dir=_data_dir(data_dir),
                    actor=state.actor,
                    device=device,
                    batch_size=batch_size,
                    progress=_labelled("explain", progress),
                    client=client,
                )
        finally:
            store.dispose()
        if summary.computed == 0:
            out.print(
                f"study {summary.study_id}: all {summary.existing} stimuli exist; "
                "nothing to compute",
                markup=False,
            )
            return
        out.print(
            f"study {summary.study_id}: computed {summary.computed} stimuli in "
            f"{summary.seconds:.1f} s ({summary.existing} existed)",
            markup=False,
        )


def _labelled(
    step: str, progress: Callable[[str, int, int], None] | None
) -> Callable[[str, int, int], None] | None:
    """One bar per arm, named by the step: ``explain ig``, ``metrics gradcam``."""
    if progress is None:
        return None
    bar = progress

    def tick(arm: str, done: int, total: int) -> None:
        bar(f"{step} {arm}", done, total)

    return tick
