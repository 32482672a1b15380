"""The command-line options that send work to a Dask cluster (``--workers``, ``--scheduler``)."""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ["SchedulerOption", "WorkersOption"]

WorkersOption = Annotated[
    int | None,
    typer.Option(
        "--workers",
        min=1,
        help="Run on a local Dask cluster of N worker processes (needs studyhub[distributed]).",
    ),
]
SchedulerOption = Annotated[
    str | None,
    typer.Option(
        "--scheduler",
        help="Run on an existing Dask cluster: its scheduler's address, e.g. tcp://host:8786.",
    ),
]
