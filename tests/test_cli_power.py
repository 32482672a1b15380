"""``studyhub power``: the plan's primary endpoint simulated under its assumptions."""

from __future__ import annotations

from pathlib import Path

import pytest

from studyhub.commands.plan import plan_power
from studyhub.protocol import load_study
from tests.paths import DEMO_PROTOCOL


def test_demo_plan_is_adequately_powered(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("power", str(DEMO_PROTOCOL))
    assert result.exit_code == 0, result.output
    assert "adequate" in result.stdout
    # the model simulated is the one the plan's endpoint fits: every interaction
    report = plan_power(load_study(DEMO_PROTOCOL), n_sims=100)
    assert report.model == (
        "rating ~ arm + (1|rater) + (1|case) + (1|rater:arm) + (1|case:arm) + (1|rater:case)"
    )


def test_power_grows_with_raters_and_type_one_error_stays_near_alpha() -> None:
    files = load_study(DEMO_PROTOCOL)
    small = plan_power(files, n_raters=3, n_cases=20, n_sims=400)
    large = plan_power(files, n_raters=10, n_cases=60, n_sims=400)
    assert small.power < large.power
    assert large.adequate and not small.adequate
    # Holm over the two tested primary endpoints: the first step tests at alpha / 2
    assert large.alpha_per_test == 0.025
    assert abs(large.type_i_error - 0.025) < 4 * large.type_i_error_mcse + 0.005


def test_plan_without_power_section_is_refused(cli, demo_copy: Path) -> None:  # type: ignore[no-untyped-def]
    plan = demo_copy.parent.parent / "analysis" / "inspection_demo.yaml"
    text = plan.read_text()
    plan.write_text(text[: text.index("power:")])
    result = cli("power", str(demo_copy))
    assert result.exit_code == 2
    assert "has no power section" in result.stderr


def test_power_on_two_workers_equals_one_process(cli) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("distributed")
    here = cli("power", str(DEMO_PROTOCOL), "--n-sims", "300")
    there = cli("power", str(DEMO_PROTOCOL), "--n-sims", "300", "--workers", "2")
    assert here.exit_code == 0 and there.exit_code == 0, there.output
    assert "power" in here.stdout
    assert there.stdout == here.stdout


def test_power_with_workers_and_a_scheduler_is_refused(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("power", str(DEMO_PROTOCOL), "--workers", "2", "--scheduler", "tcp://h:8786")
    assert result.exit_code == 2
    assert "both --scheduler tcp://h:8786 and --workers 2 were given" in result.stderr
    assert "not both" in result.stderr


def test_power_reports_progress_per_scenario_and_is_quiet_without_a_terminal(cli) -> None:  # type: ignore[no-untyped-def]
    ticks: list[tuple[str, int, int]] = []
    files = load_study(DEMO_PROTOCOL)
    with_progress = plan_power(files, n_sims=100, progress=lambda *a: ticks.append(a))
    stages = {stage for stage, _done, _total in ticks}
    assert stages == {
        "simulating (power, under the effect)",
        "simulating (type-I error, under the null)",
    }
    for stage in stages:
        done = [d for s, d, total in ticks if s == stage and total == 100]
        assert done[0] == 0 and done[-1] == 100 and done == sorted(done)
    # the results do not depend on the progress callback
    assert with_progress.power == plan_power(files, n_sims=100).power
    result = cli("power", str(DEMO_PROTOCOL), "--n-sims", "100")
    assert result.exit_code == 0, result.output
    assert "simulating" not in result.output  # no bar: the test runner is not a terminal
