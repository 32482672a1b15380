"""``studyhub sample`` and ``studyhub enroll``: cases into a registered study."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from studyhub.commands.render import plain_console, texts

__all__ = ["DEFAULT_DATA_DIR", "print_sampling_report", "progress_bar", "register_commands"]

#: Where generated or cached data sets live (the demo domain is materialised here).
DEFAULT_DATA_DIR = Path("studyhub-data")

DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        envvar="STUDYHUB_DATA",
        help="Folder for generated or cached data (default: ./studyhub-data).",
    ),
]


class RateColumn(ProgressColumn):
    """How many units a task finishes per second (``3.2 stimuli/s``), once it has a rate."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        """The task's current rate, or nothing before it has one."""
        speed = task.finished_speed or task.speed
        if speed is None:
            return Text("")
        return Text(f"{speed:.3g} {self.unit}/s")


@contextmanager
def progress_bar(
    console: Console | None = None,
    *,
    unit: str | None = None,
) -> Iterator[Callable[[str, int, int], None] | None]:
    """A progress bar on standard error for long steps, or ``None`` when it is not a terminal.

    Parameters
    ----------
    console : rich.console.Console, optional
        Where to draw (default: a plain console on standard error).
    unit : str, optional
        What is counted (e.g. "stimuli"): adds the rate, ``3.2 stimuli/s``.

    Yields
    ------
    callable or None
        ``progress(stage, done, total)``, one bar per stage; ``None`` when the
        console is not a terminal (a pipe, a log file), so nothing is drawn there.
    """
    console = console or plain_console(stderr=True)
    if not console.is_terminal:
        yield None
        return
    columns: list[ProgressColumn | str] = [
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    if unit is not None:
        columns.insert(3, TextColumn("{task.completed}/{task.total}"))
        columns.insert(4, RateColumn(unit))
    with Progress(*columns, console=console, transient=True) as bar:
        tasks: dict[str, TaskID] = {}

        def tick(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield tick


_WHAT = {"errors": "misclassified", "low_confidence": "low-confidence"}


def print_sampling_report(report: dict[str, Any], console: Console) -> None:
    """The sampling report as tables: case flow, strata, balance, diversity, calibration."""
    flow = report["flow"]
    table = Table(title="Case flow", show_header=False)
    table.add_row("assessed (pool)", str(flow["assessed"]))
    for reason, n in sorted(flow["excluded_by_reason"].items()):
        table.add_row(*texts(f"  excluded: {reason}", n))
    table.add_row("eligible", str(flow["eligible"]))
    table.add_row("enrolled", str(flow["enrolled"]))
    console.print(table)
    targeted = {
        name: e for name, e in report["enrichment"].items() if e.get("planned_count") is not None
    }
    strata = Table(title="Strata (eligible pool vs sample)")
    for col in ("stratum", "eligible", "quota", "sample", *(_WHAT[name] for name in targeted)):
        strata.add_column(col)
    for row in report["strata"]:
        flagged = [e["by_stratum"].get(row["stratum"], 0) for e in targeted.values()]
        strata.add_row(
            *texts(row["stratum"], row["eligible"], row["quota"], row["sample"], *flagged)
        )
    console.print(strata)
    std = Table(title="Standardized differences, sample minus pool (|d| < 0.1: balanced)")
    for col in ("variable", "level", "pool", "sample", "d"):
        std.add_column(col)
    for row in report["standardized_differences"]:
        std.add_row(
            *texts(
                row["variable"],
                row["level"],
                f"{row['pool']:.3f}",
                f"{row['sample']:.3f}",
                f"{row['std_diff']:+.2f}",
            )
        )
    console.print(std)
    div = report["diversity"]
    console.print(
        "Diversity: mean nearest-neighbour embedding distance "
        f"{div['sample_mean_nn_distance']:.3f} "
        f"vs {div['random_mean_nn_distance']:.3f} for random samples of the same size "
        f"(ratio {div['ratio']:.2f}); coverage radius {div['sample_coverage_radius']:.3f} vs "
        f"{div['random_coverage_radius']:.3f}",
        markup=False,
    )
    n = report["flow"]["enrolled"]
    for name, e in targeted.items():
        planned = e["planned_count"]
        kept = "as planned" if e["count"] == planned else f"planned {planned}, see the note"
        console.print(
            f"Enrichment: {int(e['count'])} {_WHAT[name]} cases of {n} "
            f"({e['achieved_share']:.1%}; {kept}: {e['target_share']:g} x {n}); "
            f"{int(e['available'])} in the eligible pool",
            markup=False,
        )
    for note in report["notes"]:
        console.print(f"note: {note}", markup=False)
    cal = report["calibration"]
    if cal.get("temperature") is not None:
        console.print(
            f"Calibration: temperature {cal['temperature']:.3f} fitted on split {cal['split']!r}; "
            f"ECE on the pool {cal['ece_before']:.4f} -> {cal['ece_after']:.4f}",
            markup=False,
        )
    console.print(f"case list SHA-256 {report['case_list_sha256']}", markup=False)


def register_commands(app: typer.Typer, state: Any, out: Console) -> None:
    """Add ``sample`` and ``enroll`` to the main app (``state`` holds --db and --actor)."""

    @app.command()
    def sample(
        study: Annotated[str | None, typer.Option("--study", help="Study id.")] = None,
        data_dir: DataDirOption = None,
    ) -> None:
        """Draw and enroll the retrospective sample the registered protocol plans."""
        from studyhub.cases.enroll import sample_retrospective
        from studyhub.store.db import open_store

        store = open_store(state.db, create=False)
        try:
            with progress_bar() as progress:
                result = sample_retrospective(
                    store, study, data_dir=_data_dir(data_dir), actor=state.actor, progress=progress
                )
        finally:
            store.dispose()
        verb = "already enrolled (same draw)" if result.already_done else "enrolled"
        out.print(f"study {result.study_id}: {len(result.enrolled)} cases {verb}", markup=False)
        print_sampling_report(result.report, out)

    @app.command()
    def enroll(
        study: Annotated[str | None, typer.Option("--study", help="Study id.")] = None,
        limit: Annotated[
            int | None, typer.Option("--limit", help="Enroll at most this many cases now.")
        ] = None,
        data_dir: DataDirOption = None,
    ) -> None:
        """Enroll the next consecutive eligible cases of a prospective study."""
        from studyhub.cases.enroll import enroll_prospective
        from studyhub.store.db import open_store

        store = open_store(state.db, create=False)
        try:
            with progress_bar() as progress:
                result = enroll_prospective(
                    store,
                    study,
                    data_dir=_data_dir(data_dir),
                    actor=state.actor,
                    limit=limit,
                    progress=progress,
                )
        finally:
            store.dispose()
        r = result.report
        out.print(
            f"study {result.study_id}: enrolled {r['enrolled_now']} cases "
            f"({r['enrolled_total']} of {r['target']}); {r['excluded']} assessed cases excluded",
            markup=False,
        )


def _data_dir(given: Path | None) -> Path:
    return given or Path(os.environ.get("STUDYHUB_DATA", DEFAULT_DATA_DIR))
