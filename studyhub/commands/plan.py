"""``studyhub power``: justify a study's size by simulating its planned design."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from studyhub.cluster import client_map, dask_client
from studyhub.commands.cluster import SchedulerOption, WorkersOption
from studyhub.errors import InputError
from studyhub.protocol.load import StudyFiles
from studyhub.protocol.plan import Endpoint

if TYPE_CHECKING:
    from studyhub.stats.power import ChunkMap

__all__ = ["PowerReport", "plan_power", "register_commands"]

SIMULATED = ("mixed_model", "cluster_bootstrap", "friedman")
#: The mixed model's random interactions, as endpoint options (all on by default).
TERMS = ("rater_by_arm", "case_by_arm", "rater_by_case")


@dataclass(frozen=True)
class PowerReport:
    """Simulated power and type-I error of a plan's primary endpoint."""

    endpoint: str
    method: str
    n_raters: int
    n_cases: int
    alpha_per_test: float
    power: float
    power_mcse: float
    type_i_error: float
    type_i_error_mcse: float
    target_power: float
    n_sims: int
    model: str = ""

    @property
    def adequate(self) -> bool:
        return self.power >= self.target_power


def _primary(files: StudyFiles) -> tuple[Endpoint, int]:
    tested = [e for e in files.plan.endpoints if e.primary and e.comparison is not None]
    if not tested:
        raise InputError(
            f"{files.plan_path}: no primary endpoint compares arms, so there is no primary test to "
            "simulate; power applies to comparison endpoints"
        )
    first = tested[0]
    if first.statistic not in SIMULATED:
        raise InputError(
            f"{files.plan_path}: the primary endpoint {first.id!r} uses {first.statistic}, which "
            f"the power simulation does not cover (it covers {', '.join(SIMULATED)}); "
            "simulate an equivalent mixed-model design or size the study by other means"
        )
    return first, len(tested)


def plan_power(
    files: StudyFiles,
    *,
    n_raters: int | None = None,
    n_cases: int | None = None,
    n_sims: int | None = None,
    map_chunks: ChunkMap | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> PowerReport:
    """Simulate the plan's first primary comparison under the plan's power assumptions.

    The simulated data come from the mixed model with the plan's SDs (rater, case,
    rater x arm, case x arm, rater x case, residual) and each simulated study is
    analysed with the endpoint's own model (its options), so for the default mixed
    model the simulated and the analysed model are one. With ``holm`` or
    ``bonferroni`` over k tested primary endpoints the test runs at alpha / k, the
    first Holm step, so the power reported is a lower bound. ``map_chunks`` runs the
    seeded chunks of simulations elsewhere (a Dask cluster) with the same result.
    """
    from studyhub.stats.power import power_simulation

    plan = files.plan
    if plan.power is None:
        raise InputError(
            f"{files.plan_path}: the plan has no power section; add power: {{effect, sd_rater, "
            "sd_case, sd_residual, sd_rater_arm, sd_case_arm, n_raters, n_cases}} with the "
            "assumptions to simulate"
        )
    ep, k = _primary(files)
    assumptions = plan.power
    alpha = plan.alpha / k if plan.multiplicity in ("holm", "bonferroni") else plan.alpha
    options: dict[str, Any] = dict(ep.options)
    res = power_simulation(
        n_raters=n_raters or assumptions.n_raters,
        n_cases=n_cases or assumptions.n_cases,
        effect=assumptions.effect,
        sd_rater=assumptions.sd_rater,
        sd_case=assumptions.sd_case,
        sd_residual=assumptions.sd_residual,
        sd_rater_arm=assumptions.sd_rater_arm,
        sd_case_arm=assumptions.sd_case_arm,
        sd_rater_case=assumptions.sd_rater_case,
        n_arms=2,
        method=ep.statistic,
        hypothesis=ep.hypothesis.type,
        margin=ep.hypothesis.margin or 0.0,
        alpha=alpha,
        multiplicity="none",
        **{term: options[term] for term in TERMS if term in options},
        n_sims=n_sims or assumptions.n_sims,
        seed=files.protocol.seed,
        map_chunks=map_chunks,
        progress=progress,
    )
    return PowerReport(
        endpoint=ep.id,
        method=ep.statistic,
        n_raters=n_raters or assumptions.n_raters,
        n_cases=n_cases or assumptions.n_cases,
        alpha_per_test=alpha,
        power=res.power,
        power_mcse=res.power_mcse,
        type_i_error=res.type_i_error,
        type_i_error_mcse=res.type_i_error_mcse,
        target_power=assumptions.target_power,
        n_sims=n_sims or assumptions.n_sims,
        model=_model_formula(res.design),
    )


def _model_formula(design: dict[str, Any]) -> str:
    """The analysis model in lme4 notation (mixed model), or the method's name."""
    if design["method"] != "mixed_model":
        return str(design["method"])
    terms = ["arm", "(1|rater)", "(1|case)"]
    for option, factor in (
        ("rater_by_arm", "rater:arm"),
        ("case_by_arm", "case:arm"),
        ("rater_by_case", "rater:case"),
    ):
        if design.get(option):
            terms.append(f"(1|{factor})")
    return "rating ~ " + " + ".join(terms)


def register_commands(app: typer.Typer, out: Console) -> None:
    """Add ``power`` to the main app."""

    @app.command()
    def power(
        protocol: Annotated[Path, typer.Argument(help="The protocol YAML file.")],
        n_raters: Annotated[
            int | None, typer.Option("--n-raters", min=2, help="Override the planned raters.")
        ] = None,
        n_cases: Annotated[
            int | None, typer.Option("--n-cases", min=2, help="Override the planned cases.")
        ] = None,
        n_sims: Annotated[
            int | None, typer.Option("--n-sims", min=100, help="Simulated studies.")
        ] = None,
        workers: WorkersOption = None,
        scheduler: SchedulerOption = None,
    ) -> None:
        """Simulate the planned design: power and type-I error of the primary endpoint."""
        from studyhub.commands.cases import progress_bar
        from studyhub.protocol.load import load_study

        files = load_study(protocol)
        with progress_bar(unit="studies") as progress, ExitStack() as stack:
            on_cluster = workers is not None or scheduler is not None
            client = stack.enter_context(dask_client(scheduler, workers)) if on_cluster else None
            rep = plan_power(
                files,
                n_raters=n_raters,
                n_cases=n_cases,
                n_sims=n_sims,
                map_chunks=None if client is None else client_map(client),
                progress=progress,
            )
        table = Table(
            title=f"Power of primary endpoint {rep.endpoint} ({rep.method})", show_header=False
        )
        table.add_row(
            "design", f"{rep.n_raters} raters x {rep.n_cases} cases, {rep.n_sims} simulated studies"
        )
        table.add_row("simulated and fitted", rep.model)
        table.add_row("alpha per test", f"{rep.alpha_per_test:.4g}")
        table.add_row("power", f"{rep.power:.3f} ± {1.96 * rep.power_mcse:.3f}")
        table.add_row(
            "type-I error", f"{rep.type_i_error:.3f} ± {1.96 * rep.type_i_error_mcse:.3f}"
        )
        table.add_row("target power", f"{rep.target_power:.2f}")
        verdict = "adequate" if rep.adequate else "TOO SMALL: add raters or cases"
        table.add_row("design is", verdict)
        out.print(table)
