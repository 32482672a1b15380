"""The protocol's ``metrics`` section: presets, overrides, and hashes that do not move."""

from __future__ import annotations

from pathlib import Path

import pytest

from studyhub.errors import ProtocolError
from studyhub.protocol import load_study
from studyhub.protocol.load import canonical_json
from studyhub.protocol.metric_settings import PRESETS, MetricSettings
from tests.paths import DEMO_PROTOCOL


def test_the_default_is_the_cheap_preset() -> None:
    plan = MetricSettings().plan()
    assert plan == PRESETS["cheap"]
    assert plan.curve_steps == 8 and plan.mask_metrics
    assert plan.infidelity_samples == 0 and plan.sensitivity_samples == 0
    assert not plan.randomization


def test_full_preset_is_the_set_computed_before_the_section_existed() -> None:
    plan = MetricSettings.model_validate({"preset": "full"}).plan()
    assert (plan.curve_steps, plan.infidelity_samples, plan.sensitivity_samples) == (32, 8, 8)
    assert (plan.infidelity_noise_std, plan.sensitivity_radius) == (0.1, 0.02)
    assert plan.randomization and plan.mask_metrics


def test_a_written_field_overrides_the_preset() -> None:
    plan = MetricSettings.model_validate(
        {"preset": "full", "curve_steps": 4, "randomization": False}
    ).plan()
    assert plan.curve_steps == 4 and not plan.randomization
    assert plan.infidelity_samples == 8  # the rest stays the preset's


def test_a_protocol_without_the_section_hashes_as_before() -> None:
    """Unset defaults stay out of the canonical form, so registered studies keep their hash."""
    files = load_study(DEMO_PROTOCOL)
    assert '"metrics"' not in canonical_json(files.protocol)
    assert files.protocol.metrics.plan() == PRESETS["cheap"]


def _with_metrics(tmp_path: Path, section: str) -> Path:
    text = DEMO_PROTOCOL.read_text().replace(
        "analysis_plan: ../analysis/", f"analysis_plan: {DEMO_PROTOCOL.parent.parent}/analysis/"
    )
    path = tmp_path / "protocol.yaml"
    path.write_text(text.replace("\nblinding:", f"\nmetrics:\n{section}\n\nblinding:", 1))
    return path


def test_a_written_section_is_hashed_as_written(tmp_path: Path) -> None:
    files = load_study(_with_metrics(tmp_path, "  preset: full"))
    canonical = canonical_json(files.protocol)
    assert '"metrics":{"preset":"full"}' in canonical
    assert files.protocol_hash != load_study(DEMO_PROTOCOL).protocol_hash


def test_an_explicit_null_is_refused_with_its_fix(tmp_path: Path) -> None:
    with pytest.raises(ProtocolError) as info:
        load_study(_with_metrics(tmp_path, "  sensitivity_radius: null"))
    message = str(info.value)
    assert "metrics.sensitivity_radius" in message
    assert "leave the key out to use its default" in message
