"""``studyhub explain``: every arm for every case, idempotent, verifiable, metadata-free."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select, update

from studyhub.explain.compute import array_from_bytes, attribution_sha256
from studyhub.explain.render import png_chunks
from studyhub.store.db import open_store
from studyhub.store.models import Arm, Case, Stimulus
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
    params: {n_steps: 16, baseline: black}
  - id: gradcam
    kind: method
    method: gradcam
  - id: smooth
    kind: method
    method: smoothgrad
    params: {nt_samples: 8}
  - id: random_map
    kind: control
    method: random
  - id: randomized_model
    kind: control
    method: randomized_model
    params: {base_method: integrated_gradients, n_steps: 16}
  - id: plain
    kind: control
    method: none

rendering:"""


def _small_study(folder: Path) -> Path:
    text = DEMO_PROTOCOL.read_text()
    start, end = text.index("    quotas:\n"), text.index("  diversity:")
    text = text[:start] + "    quotas:\n" + QUOTAS + "\n" + text[end:]
    text = text.replace("n_cases: 40", "n_cases: 8")
    text = text[: text.index("arms:")] + ARMS + text[text.index("rendering:") + len("rendering:") :]
    (folder / "protocols").mkdir()
    (folder / "analysis").mkdir()
    (folder / "protocols" / "small.yaml").write_text(text)
    plan = DEMO_PLAN.read_text().replace("versus: randomized_model", "versus: random_map")
    (folder / "analysis" / DEMO_PLAN.name).write_text(plan)
    return folder / "protocols" / "small.yaml"


@pytest.fixture(scope="module")
def explained(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A registered, sampled and explained small demo study (8 cases x 6 arms)."""
    from studyhub.cli import main

    folder = tmp_path_factory.mktemp("explain")
    protocol = _small_study(folder)
    db = f"sqlite:///{folder / 'studyhub.db'}"
    data = str(folder / "data")

    def run(*args: str) -> int:
        try:
            main(["--db", db, *args])
        except SystemExit as exc:
            return int(exc.code or 0)
        return 0

    codes = [
        run("register", str(protocol)),
        run("sample", "--data-dir", data),
        run("explain", "--data-dir", data),
    ]
    return {"db": db, "data": data, "codes": codes, "run": run}


def _stimuli(db: str) -> list[tuple[Stimulus, Arm, Case]]:
    store = open_store(db, create=False)
    try:
        with store.session() as s:
            return [
                (stim, arm, case)
                for stim, arm, case in s.execute(
                    select(Stimulus, Arm, Case)
                    .join(Arm, Arm.id == Stimulus.arm_id)
                    .join(Case, Case.id == Stimulus.case_id)
                )
            ]
    finally:
        store.dispose()


def test_every_arm_for_every_case(explained) -> None:  # type: ignore[no-untyped-def]
    assert explained["codes"] == [0, 0, 0]
    rows = _stimuli(explained["db"])
    assert len(rows) == 8 * 6
    assert {(c.case_key, a.arm_key) for _s, a, c in rows} == {
        (c.case_key, a.arm_key) for _s, _a, c in rows for a in {r[1] for r in rows}
    }


def test_a_second_run_computes_nothing(explained, cli) -> None:  # type: ignore[no-untyped-def]
    before = {s.id: s.attribution_sha256 for s, _a, _c in _stimuli(explained["db"])}
    result = cli("--db", explained["db"], "explain", "--data-dir", explained["data"])
    assert result.exit_code == 0, result.output
    assert "nothing to compute" in result.stdout
    assert {s.id: s.attribution_sha256 for s, _a, _c in _stimuli(explained["db"])} == before


def test_rendered_pngs_are_metadata_free_and_the_same_size(explained) -> None:  # type: ignore[no-untyped-def]
    sizes = set()
    originals: dict[str, set[bytes]] = {}
    for stim, _arm, case in _stimuli(explained["db"]):
        for png in (stim.image_png, stim.original_png):
            assert png is not None
            assert set(png_chunks(png)) == {"IHDR", "IDAT", "IEND"}
            img = Image.open(io.BytesIO(png))
            sizes.add((img.size, img.mode))
            assert not img.info  # no text, no gamma, no anything
        originals.setdefault(case.case_key, set()).add(stim.original_png or b"")
    assert len(sizes) == 1
    # one original per case, whatever the arm: the viewer's overlay toggle lines up
    assert all(len(v) == 1 for v in originals.values())


def test_no_explanation_arm_shows_the_image_only(explained) -> None:  # type: ignore[no-untyped-def]
    for stim, arm, _case in _stimuli(explained["db"]):
        if arm.arm_key == "plain":
            assert stim.attribution is None and stim.overlay_png is None
            assert stim.image_png == stim.original_png


def test_provenance_traces_each_stimulus(explained) -> None:  # type: ignore[no-untyped-def]
    for stim, arm, case in _stimuli(explained["db"]):
        prov = stim.provenance
        for key in (
            "model",
            "method",
            "params",
            "seed",
            "device",
            "torch",
            "captum",
            "input_image_sha256",
            "rendering",
            "duration_ms",
            "target_class",
        ):
            assert key in prov, key
        assert prov["method"] == arm.method
        assert prov["input_image_sha256"] == case.image_sha256
        assert len(prov["model"]["weights_sha256"]) == 64
        assert stim.seed == prov["seed"]
        if stim.attribution is not None:
            raw = array_from_bytes(stim.attribution)
            assert raw.shape == (64, 64)
            assert attribution_sha256(raw) == stim.attribution_sha256 == prov["attribution_sha256"]
        if arm.method == "integrated_gradients":
            assert prov["params"]["n_steps"] == 16
            assert "randomization_spearman" in stim.metrics
            assert {"deletion_auc", "insertion_auc", "infidelity", "max_sensitivity"} <= set(
                stim.metrics
            )


def test_codes_are_opaque(explained) -> None:  # type: ignore[no-untyped-def]
    rows = _stimuli(explained["db"])
    codes = [s.code for s, _a, _c in rows]
    assert len(set(codes)) == len(codes)
    for stim, arm, case in rows:
        assert len(stim.code) == 10
        assert arm.arm_key.upper() not in stim.code and case.case_key not in stim.code


def test_verify_recomputes_and_matches(explained, cli) -> None:  # type: ignore[no-untyped-def]
    result = cli(
        "--db", explained["db"], "explain", "--verify", "100", "--data-dir", explained["data"]
    )
    assert result.exit_code == 0, result.output
    assert "verify: 40 of 40 match" in result.stdout  # 8 cases x 5 arms with a map
    assert "smoothgrad" in result.stdout


def test_verify_detects_a_changed_attribution(explained, cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import shutil

    copy = tmp_path / "copy.db"
    shutil.copy(explained["db"].removeprefix("sqlite:///"), copy)
    db = f"sqlite:///{copy}"
    store = open_store(db, create=False)
    try:
        with store.engine.begin() as conn:
            conn.execute(update(Stimulus).values(attribution_sha256="0" * 64))
    finally:
        store.dispose()
    result = cli("--db", db, "explain", "--verify", "3", "--data-dir", explained["data"])
    assert result.exit_code == 1
    assert "hash differs" in result.stdout or "max difference" in result.stdout


def test_explain_before_enrollment_is_refused(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db = f"sqlite:///{tmp_path / 'x.db'}"
    assert cli("--db", db, "register", str(DEMO_PROTOCOL)).exit_code == 0
    result = cli("--db", db, "explain")
    assert result.exit_code == 2
    assert "cannot explain: study 'inspection_demo' is registered" in result.stderr


def test_no_cuda_is_a_clear_error(explained, cli) -> None:  # type: ignore[no-untyped-def]
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    result = cli(
        "--db", explained["db"], "explain", "--device", "cuda", "--data-dir", explained["data"]
    )
    assert result.exit_code == 2
    assert "no CUDA device is available" in result.stderr


def test_randomized_control_decorrelates_from_the_trained_map(explained) -> None:  # type: ignore[no-untyped-def]
    spearman = [
        s.metrics["randomization_spearman"]
        for s, a, _c in _stimuli(explained["db"])
        if a.arm_key == "ig"
    ]
    assert len(spearman) == 8
    assert float(np.mean(spearman)) < 0.6
