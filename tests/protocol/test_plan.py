"""Plan schema rules: primary endpoints generalise to new raters, intervals match alpha."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from studyhub.errors import ProtocolError
from studyhub.protocol import Endpoint, load_study
from studyhub.protocol.plan import COMPARISON_STATISTICS, CONDITIONAL_STATISTICS
from tests.paths import DEMO_PLAN


def _endpoint(statistic: str, primary: bool) -> dict[str, object]:
    return {
        "id": "e",
        "primary": primary,
        "description": "an endpoint",
        "measure": "auc" if statistic == "mrmc" else "usefulness",
        "statistic": statistic,
        "comparison": {"arm": "a", "versus": "b"},
        "hypothesis": {"type": "superiority"},
        "success_criterion": "a criterion in words",
    }


@pytest.mark.parametrize("statistic", ["friedman", "ordinal"])
def test_fixed_rater_statistics_are_refused_as_primary(statistic: str) -> None:
    with pytest.raises(ValidationError) as info:
        Endpoint.model_validate(_endpoint(statistic, primary=True))
    (error,) = info.value.errors()
    assert error["loc"] == ("statistic",)
    message = error["msg"]
    assert f"statistic {statistic!r} is refused for a primary endpoint (primary: true)" in message
    assert "conditional on those raters (fixed raters, random cases)" in message
    assert "do not generalise to new raters" in message
    assert (
        f"; use statistic: mixed_model for the primary endpoint (random rater and case effects: "
        f"generalises to new raters and cases) and keep {statistic} as a secondary sensitivity "
        "analysis (primary: false)"
    ) in message


@pytest.mark.parametrize("statistic", COMPARISON_STATISTICS)
def test_secondary_endpoints_take_every_comparison(statistic: str) -> None:
    assert Endpoint.model_validate(_endpoint(statistic, primary=False)).statistic == statistic
    if statistic not in CONDITIONAL_STATISTICS:
        assert Endpoint.model_validate(_endpoint(statistic, primary=True)).primary


def _plan_line(plan: Path, text: str, after: str = "") -> int:
    lines = plan.read_text().splitlines()
    start = next(i for i, row in enumerate(lines) if after in row)
    return next(i for i, row in enumerate(lines[start:], start + 1) if text in row)


def test_friedman_primary_is_located_in_the_plan(demo_copy: Path) -> None:
    plan = demo_copy.parent.parent / "analysis" / DEMO_PLAN.name
    plan.write_text(plan.read_text().replace("statistic: mixed_model", "statistic: friedman", 1))
    plan.write_text(plan.read_text().replace("    options: {rater_by_arm: true}\n", "", 1))
    line = _plan_line(plan, "statistic: friedman")
    with pytest.raises(ProtocolError) as info:
        load_study(demo_copy)
    message = str(info.value)
    assert str(plan) in message
    assert f"line {line}, key endpoints[0].statistic: statistic 'friedman' is refused" in message
    assert "Fix: use statistic: mixed_model for the primary endpoint" in message


@pytest.mark.parametrize(
    ("edit", "key", "found", "fix"),
    [
        (
            ("confidence: 0.95", "confidence: 0.9"),
            "confidence",
            "confidence 0.9 does not match alpha 0.05",
            "Fix: set confidence: 0.95 (1 - alpha) or alpha: 0.1",
        ),
        (
            ("alpha: 0.05\nconfidence: 0.95\n", "alpha: 0.025\n"),
            "alpha",
            "confidence 0.95 does not match alpha 0.025",
            "Fix: set confidence: 0.975 (1 - alpha) or alpha: 0.05",
        ),
    ],
)
def test_confidence_must_match_alpha(
    demo_copy: Path, edit: tuple[str, str], key: str, found: str, fix: str
) -> None:
    """Every hypothesis of a plan is one-sided: its lower bound at confidence must agree with
    its test at alpha."""
    plan = demo_copy.parent.parent / "analysis" / DEMO_PLAN.name
    plan.write_text(plan.read_text().replace(*edit))
    line = _plan_line(plan, f"{key}:")
    with pytest.raises(ProtocolError) as info:
        load_study(demo_copy)
    message = str(info.value)
    assert f"line {line}, key {key}: {found}: every hypothesis of a plan is one-sided" in message
    assert fix in message
    plan.write_text(plan.read_text().replace("alpha: 0.025\n", "alpha: 0.025\nconfidence: 0.975\n"))
    if key == "alpha":  # the matching pair validates
        assert load_study(demo_copy).plan.confidence == 0.975
