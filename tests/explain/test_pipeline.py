"""``studyhub explain``: every arm for every case, idempotent, verifiable, metadata-free."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select, text

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
        # The quantitative metrics are a step of their own (explain --metrics), not a stimulus's.
        assert not {"deletion_auc", "randomization_spearman", "pointing_game"} & set(stim.metrics)
        assert "metrics" not in prov


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


def _tampered_copy(explained, tmp_path: Path, *statements: Any) -> str:  # type: ignore[no-untyped-def]
    """A copy of the explained study's database with ``statements`` applied behind studyhub."""
    import shutil

    copy = tmp_path / "copy.db"
    shutil.copy(explained["db"].removeprefix("sqlite:///"), copy)
    db = f"sqlite:///{copy}"
    store = open_store(db, create=False)
    try:
        with store.engine.begin() as conn:
            for sql in statements:
                conn.execute(text(sql) if isinstance(sql, str) else sql)
    finally:
        store.dispose()
    return db


def test_verify_detects_a_hash_column_that_disagrees_with_the_blob(
    explained, cli, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    db = _tampered_copy(explained, tmp_path, "UPDATE stimulus SET attribution_sha256 = '00'")
    result = cli("--db", db, "explain", "--verify", "3", "--data-dir", explained["data"])
    assert result.exit_code == 1
    assert "verify: 0 of 3 match" in result.stdout
    assert result.stdout.count("hash column does not match the stored attribution blob") == 3


def test_verify_detects_swapped_attribution_blobs(explained, cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Two maps of one arm swapped, hash columns with them: only recomputation sees it."""
    ig = [(stim, case) for stim, arm, case in _stimuli(explained["db"]) if arm.arm_key == "ig"]
    (a, _ca), (b, _cb) = ig[0], ig[1]
    assert a.attribution_sha256 != b.attribution_sha256
    swap = [
        text(
            "UPDATE stimulus SET attribution = :blob, attribution_sha256 = :digest WHERE id = :id"
        ).bindparams(blob=other.attribution, digest=other.attribution_sha256, id=this.id)
        for this, other in ((a, b), (b, a))
    ]
    db = _tampered_copy(explained, tmp_path, *swap)
    result = cli("--db", db, "explain", "--verify", "40", "--data-dir", explained["data"])
    assert result.exit_code == 1
    assert "verify: 38 of 40 match" in result.stdout
    mismatches = sorted(line for line in result.stdout.splitlines() if line.startswith("MISMATCH"))
    assert [m.split(":")[0] for m in mismatches] == sorted(
        [f"MISMATCH {a.code}", f"MISMATCH {b.code}"]
    )
    assert all("the attribution differs from its recomputation" in m for m in mismatches)


def test_verify_detects_a_replaced_png(explained, cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The reviewer's case: every image_png replaced, the attributions left alone."""
    db = _tampered_copy(
        explained,
        tmp_path,
        "UPDATE stimulus SET image_png = (SELECT image_png FROM stimulus ORDER BY id LIMIT 1) "
        "WHERE id > (SELECT min(id) FROM stimulus)",
        "UPDATE stimulus SET overlay_png = original_png WHERE id = (SELECT min(id) FROM stimulus "
        "WHERE attribution IS NOT NULL)",
    )
    result = cli("--db", db, "explain", "--verify", "40", "--data-dir", explained["data"])
    assert result.exit_code == 1
    assert "verify: 0 of 40 match" in result.stdout
    assert result.stdout.count("the stimulus PNG differs") >= 39
    assert result.stdout.count("the overlay PNG differs") == 1


def test_explain_before_enrollment_is_refused(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db = f"sqlite:///{tmp_path / 'x.db'}"
    assert cli("--db", db, "register", "--no-preflight", str(DEMO_PROTOCOL)).exit_code == 0
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


def test_demo_stimuli_keep_no_dicom_values(explained) -> None:  # type: ignore[no-untyped-def]
    rows = _stimuli(explained["db"])
    assert rows and all(stim.original_raw is None for stim, _a, _c in rows)


# --- DICOM cases keep their modality values ------------------------------------


def _dicom_study(folder: Path) -> Path:
    """The demo protocol over a CSV manifest of three DICOM files of two sizes and a PNG.

    The PNG has no DICOM metadata, so the sampling report meets missing levels
    (e.g. of ``modality``) and the explain batches mix image sizes.
    """
    import pydicom
    from pydicom.data import get_testdata_file

    sources = [get_testdata_file(n) for n in ("CT_small.dcm", "MR_small.dcm")]
    if any(p is None for p in sources):
        pytest.skip("pydicom's small test files are not available offline")
    text = DEMO_PROTOCOL.read_text()
    data = "data:\n  kind: csv\n  path: manifest.csv\n  labels: [none, crack, scratch, pit]\n  split_column: null\n"
    text = text[: text.index("data:\n")] + data + "\n" + text[text.index("model:\n") :]
    text = text.replace("  calibration_split: calibration", "  calibration_split: null")
    sampling = "sampling:\n  n_cases: 4\n  pool_split: null\n\n"
    text = text[: text.index("sampling:\n")] + sampling + text[text.index("arms:\n") :]
    text = text.replace("n_steps: 32", "n_steps: 8")
    (folder / "protocols").mkdir(parents=True)
    (folder / "analysis").mkdir()
    (folder / "analysis" / DEMO_PLAN.name).write_text(DEMO_PLAN.read_text())
    protocol = folder / "protocols" / "dicom.yaml"
    protocol.write_text(text)
    images = protocol.parent / "images"
    images.mkdir()
    ct = pydicom.dcmread(str(sources[0]))  # RescaleSlope 1, RescaleIntercept -1024
    ct.save_as(images / "ct.dcm")
    mr = pydicom.dcmread(str(sources[1]))  # no rescale tags: give it slope 2.5, intercept -100
    mr.RescaleSlope, mr.RescaleIntercept = "2.5", "-100"
    mr.save_as(images / "mr.dcm")
    ct.WindowCenter, ct.WindowWidth = "40", "400"  # a window changes nothing stored
    ct.save_as(images / "ct_windowed.dcm")
    from PIL import Image

    Image.fromarray(np.arange(64 * 64, dtype=np.uint8).reshape(64, 64)).save(images / "photo.png")
    (protocol.parent / "manifest.csv").write_text(
        "image_path,label\nimages/ct.dcm,none\nimages/mr.dcm,pit\nimages/ct_windowed.dcm,crack\n"
        "images/photo.png,scratch\n"
    )
    return protocol


def test_dicom_stimuli_store_the_files_modality_values(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import zlib

    import pydicom

    protocol = _dicom_study(tmp_path / "study")
    db = f"sqlite:///{tmp_path / 'dicom.db'}"
    data = str(tmp_path / "cache")
    for args in (("register", str(protocol)), ("sample", "--data-dir", data)):
        result = cli("--db", db, *args)
        assert result.exit_code == 0, result.output
    # CT (128 px) and MR / PNG (64 px) in one batch of 16: explain splits it by image size
    result = cli("--db", db, "explain", "--data-dir", data)
    assert result.exit_code == 0, result.output

    images = protocol.parent / "images"
    # Expected values straight from pydicom: stored pixels * slope + intercept, as float32.
    ct = pydicom.dcmread(images / "ct.dcm")
    mr = pydicom.dcmread(images / "mr.dcm")
    expected = {
        "images/ct.dcm": ct.pixel_array.astype(np.float64) - 1024.0,
        "images/mr.dcm": mr.pixel_array.astype(np.float64) * 2.5 - 100.0,
        "images/ct_windowed.dcm": ct.pixel_array.astype(np.float64) - 1024.0,
    }
    rows = _stimuli(db)
    assert len(rows) == 4 * 4
    sizes = {"images/ct.dcm": 128, "images/ct_windowed.dcm": 128}
    for stim, _arm, case in rows:
        batch = stim.provenance.get("batch", [case.case_key])
        assert {sizes.get(k, 64) for k in batch} == {sizes.get(case.case_key, 64)}
        if case.case_key == "images/photo.png":
            assert stim.original_raw is None  # no DICOM values to keep
            continue
        assert stim.original_raw is not None, case.case_key
        # zlib-compressed .npy, readable without pickle, smaller than the raw float32 values
        npy = zlib.decompress(stim.original_raw)
        values = np.load(io.BytesIO(npy), allow_pickle=False)
        assert values.dtype == np.float32 and values.shape == expected[case.case_key].shape
        np.testing.assert_array_equal(values, expected[case.case_key].astype(np.float32))
        assert len(stim.original_raw) < values.nbytes
    assert {c.case_key for _s, _a, c in rows} == {*expected, "images/photo.png"}

    result = cli("--db", db, "explain", "--verify", "20", "--data-dir", data)
    assert result.exit_code == 0, result.output
    assert "verify: 16 of 16 match" in result.stdout  # 4 cases x 4 arms, all with a map
