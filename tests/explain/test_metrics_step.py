"""``studyhub explain --metrics``: the metrics of stored stimuli, idempotent, with provenance."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from sqlalchemy import func, select

from studyhub import __version__
from studyhub.errors import DataError
from studyhub.store.db import open_store
from studyhub.store.models import Arm, AuditEvent, Stimulus
from tests.paths import DEMO_PLAN, DEMO_PROTOCOL

QUOTAS = "\n".join(
    f"      {label}|{light}: 1"
    for label in ("none", "crack", "scratch", "pit")
    for light in ("bright", "dim")
)
ARMS = """arms:
  - id: ig
    kind: method
    method: integrated_gradients
    params: {n_steps: 8, baseline: black}
  - id: gradcam
    kind: method
    method: gradcam
  - id: random_map
    kind: control
    method: random
  - id: plain
    kind: control
    method: none

rendering:"""
METRICS = """metrics:
  preset: full
  curve_steps: 4
  infidelity_samples: 2
  sensitivity_samples: 2

blinding:"""
EVERY_METRIC = {
    "deletion_auc",
    "insertion_auc",
    "infidelity",
    "max_sensitivity",
    "randomization_spearman",
    "pointing_game",
    "relevance_mass",
    "top_k_iou",
}


def _study(folder: Path) -> Path:
    text = DEMO_PROTOCOL.read_text()
    start, end = text.index("    quotas:\n"), text.index("  diversity:")
    text = text[:start] + "    quotas:\n" + QUOTAS + "\n" + text[end:]
    text = text.replace("n_cases: 40", "n_cases: 8")
    text = text[: text.index("arms:")] + ARMS + text[text.index("rendering:") + len("rendering:") :]
    text = text.replace("\nblinding:", "\n" + METRICS, 1)
    (folder / "protocols").mkdir()
    (folder / "analysis").mkdir()
    (folder / "protocols" / "small.yaml").write_text(text)
    plan = DEMO_PLAN.read_text().replace("versus: randomized_model", "versus: random_map")
    (folder / "analysis" / DEMO_PLAN.name).write_text(plan)
    return folder / "protocols" / "small.yaml"


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A registered, sampled and explained small demo study (8 cases x 4 arms), no metrics yet."""
    from studyhub.cli import main

    folder = tmp_path_factory.mktemp("metrics")
    protocol = _study(folder)
    db = f"sqlite:///{folder / 'studyhub.db'}"
    data = str(folder / "data")
    codes = []
    for args in (("register", str(protocol)), ("sample", "--data-dir", data)):
        try:
            main(["--db", db, *args])
            codes.append(0)
        except SystemExit as exc:
            codes.append(int(exc.code or 0))
    assert codes == [0, 0]
    return {"db": db, "data": data, "protocol": protocol, "folder": folder}


def _rows(db: str) -> list[tuple[Stimulus, Arm]]:
    store = open_store(db, create=False)
    try:
        with store.session() as s:
            return list(s.execute(select(Stimulus, Arm).join(Arm, Arm.id == Stimulus.arm_id)).all())
    finally:
        store.dispose()


def _events(db: str, action: str) -> int:
    store = open_store(db, create=False)
    try:
        with store.session() as s:
            return int(
                s.scalar(
                    select(func.count()).select_from(AuditEvent).where(AuditEvent.action == action)
                )
                or 0
            )
    finally:
        store.dispose()


def test_metrics_before_enrollment_are_refused(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    protocol = _study(tmp_path)
    db = f"sqlite:///{tmp_path / 'early.db'}"
    assert cli("--db", db, "register", str(protocol)).exit_code == 0
    result = cli("--db", db, "explain", "--metrics", "--data-dir", str(tmp_path / "data"))
    assert result.exit_code == 2
    assert "cannot compute metrics" in result.stderr
    assert "is registered" in result.stderr
    assert "enrolling or rating or closed" in result.stderr


def test_explain_then_metrics_then_nothing_to_do(study, cli) -> None:  # type: ignore[no-untyped-def]
    """explain stores no metrics; --metrics adds them with provenance; a rerun computes none."""
    from studyhub.explain.metrics_step import compute_metrics

    result = cli("--db", study["db"], "explain", "--data-dir", study["data"])
    assert result.exit_code == 0, result.output
    rows = _rows(study["db"])
    assert len(rows) == 8 * 4
    assert all(not EVERY_METRIC & set(stim.metrics) for stim, _arm in rows)
    assert "explain " not in result.output  # no progress bar without a terminal

    ticks: list[tuple[str, int, int]] = []
    store = open_store(study["db"], create=False)
    try:
        summary = compute_metrics(
            store,
            None,
            data_dir=Path(study["data"]),
            actor="tester",
            batch_size=5,
            progress=lambda *a: ticks.append(a),
        )
    finally:
        store.dispose()
    assert summary.computed == 8 * 3 and summary.current == 0  # the none arm has no map
    assert set(summary.groups) == {
        "curves",
        "infidelity",
        "max_sensitivity",
        "randomization",
        "mask",
    }
    # per arm: a start at 0, then one tick per stored batch (5 + 3), ending at the arm's total
    for arm in ("ig", "gradcam", "random_map"):
        assert [t[1:] for t in ticks if t[0] == arm] == [(0, 8), (5, 8), (8, 8)]

    for stim, arm in _rows(study["db"]):
        if arm.method == "none":
            assert not EVERY_METRIC & set(stim.metrics) and "metrics" not in stim.provenance
            continue
        assert set(stim.metrics) >= EVERY_METRIC, arm.arm_key
        assert 0.0 <= stim.metrics["deletion_auc"] <= 1.0
        assert np.isfinite(stim.metrics["infidelity"]) and stim.metrics["max_sensitivity"] >= 0
        record = stim.provenance["metrics"]
        assert record["curves"]["settings"] == {"steps": 4, "baseline": "black image"}
        assert record["infidelity"]["settings"] == {"samples": 2, "noise_std": 0.1}
        assert record["max_sensitivity"]["settings"] == {"samples": 2, "radius": 0.02}
        assert record["mask"]["metrics"] == ["pointing_game", "relevance_mass", "top_k_iou"]
        assert {r["studyhub_version"] for r in record.values()} == {__version__}
        if arm.method == "random":  # no weights to randomize: recorded, not applicable
            assert stim.metrics["randomization_spearman"] is None
        assert "region_shares" in stim.metrics  # what explain stored stays
    spearman = [
        s.metrics["randomization_spearman"] for s, a in _rows(study["db"]) if a.arm_key == "ig"
    ]
    assert len(spearman) == 8 and float(np.mean(spearman)) < 0.6  # the trained map decorrelates

    before = {s.id: dict(s.metrics) for s, _a in _rows(study["db"])}
    events = _events(study["db"], "metrics")
    assert events == 3 * 2  # one per stored batch
    again = cli("--db", study["db"], "explain", "--metrics", "--data-dir", study["data"])
    assert again.exit_code == 0, again.output
    assert "computed metrics of 0 stimuli" in again.stdout
    assert "24 were current" in again.stdout
    assert {s.id: dict(s.metrics) for s, _a in _rows(study["db"])} == before
    assert _events(study["db"], "metrics") == events


def test_changed_settings_recompute_only_their_metric(study, cli) -> None:  # type: ignore[no-untyped-def]
    """An amendment of curve_steps recomputes the curves and nothing else."""
    if not any("metrics" in s.provenance for s, _a in _rows(study["db"])):
        pytest.skip("needs the metrics of test_explain_then_metrics_then_nothing_to_do")
    before = {s.id: dict(s.metrics) for s, _a in _rows(study["db"])}
    path = study["protocol"]
    path.write_text(path.read_text().replace("curve_steps: 4", "curve_steps: 6"))
    amended = cli(
        "--db", study["db"], "amend", str(path), "--reason", "longer curves", "--no-preflight"
    )
    assert amended.exit_code == 0, amended.output
    result = cli("--db", study["db"], "explain", "--metrics", "--data-dir", study["data"])
    assert result.exit_code == 0, result.output
    assert "computed metrics of 24 stimuli" in result.stdout
    changed = 0
    for stim, _arm in _rows(study["db"]):
        old = before[stim.id]
        if "metrics" not in stim.provenance:
            continue
        assert stim.provenance["metrics"]["curves"]["settings"]["steps"] == 6
        assert stim.provenance["metrics"]["infidelity"]["settings"]["samples"] == 2
        changed += stim.metrics["deletion_auc"] != old["deletion_auc"]
        others = EVERY_METRIC - {"deletion_auc", "insertion_auc"}
        assert {k: stim.metrics[k] for k in others} == {k: old[k] for k in others}
    assert changed > 0


SPEARMAN_PLAN = """
  - id: deletion_correlation
    description: Usefulness follows the deletion score of the maps
    measure: "metric:deletion_auc"
    statistic: spearman
    hypothesis: {type: correlation, threshold: 0.1}
    success_criterion: The lower 95% limit of rho is at least 0.1.
    options: {item: usefulness, n_boot: 200}
"""


def test_analysis_needing_a_metric_is_refused_until_it_is_computed(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    from studyhub.evidence.analyze import require_stored_metrics
    from studyhub.protocol.plan import AnalysisPlan

    plan_data = yaml.safe_load(DEMO_PLAN.read_text())
    plan_data["endpoints"].append(yaml.safe_load(SPEARMAN_PLAN)[0])
    plan = AnalysisPlan.model_validate(plan_data)
    protocol = _study(tmp_path)
    protocol.write_text(
        protocol.read_text().replace(
            "\nmetrics:\n  preset: full\n", "\nmetrics:\n  preset: cheap\n"
        )
    )
    db = f"sqlite:///{tmp_path / 'a.db'}"
    data = str(tmp_path / "data")
    for args in (
        ("register", str(protocol)),
        ("sample", "--data-dir", data),
        ("explain", "--data-dir", data),
    ):
        assert cli("--db", db, *args).exit_code == 0
    store = open_store(db, create=False)
    try:
        with store.session() as s, pytest.raises(DataError) as info:
            require_stored_metrics(s, "inspection_demo", plan)
        message = str(info.value)
        assert "metric 'deletion_auc'" in message
        assert "24 of 24 stimuli have no stored deletion_auc" in message
        assert "studyhub explain --metrics" in message
        assert "metrics.curve_steps" in message
        assert cli("--db", db, "explain", "--metrics", "--data-dir", data).exit_code == 0
        with store.session() as s:
            require_stored_metrics(s, "inspection_demo", plan)  # now it passes
            demo_plan = AnalysisPlan.model_validate(yaml.safe_load(DEMO_PLAN.read_text()))
            require_stored_metrics(s, "inspection_demo", demo_plan)  # no metric endpoint
    finally:
        store.dispose()
