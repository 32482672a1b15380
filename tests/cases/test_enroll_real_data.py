"""Real images and a DICOM series enrolled into a registered study, end to end.

The demo CNN takes grayscale images of any size (global max pooling), so it can
stand in as the study's model for real photographs and DICOM slices: what these
tests check is the data path (manifest -> checksums -> store), not the model.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import select

from studyhub.store.db import open_store
from studyhub.store.models import Case, Prediction
from tests.cases.helpers import REAL, otsu_mask, write_csv
from tests.paths import DEMO_PLAN, DEMO_PROTOCOL

GRAY = [r for r in REAL if r[1]().ndim == 2]  # the demo model reads grayscale


def _protocol(folder: Path, data_block: str, n_cases: int) -> Path:
    text = DEMO_PROTOCOL.read_text()
    start, end = text.index("data:\n"), text.index("model:\n")
    text = text[:start] + data_block + "\n" + text[end:]
    text = text.replace("  calibration_split: calibration", "  calibration_split: null")
    start, end = text.index("sampling:\n"), text.index("arms:\n")
    text = text[:start] + f"sampling:\n  n_cases: {n_cases}\n  pool_split: null\n\n" + text[end:]
    (folder / "protocols").mkdir(parents=True)
    (folder / "analysis").mkdir()
    (folder / "analysis" / DEMO_PLAN.name).write_text(DEMO_PLAN.read_text())
    path = folder / "protocols" / "real.yaml"
    path.write_text(text)
    return path


def _enrolled(db: str) -> dict[str, tuple[Case, Prediction]]:
    store = open_store(db, create=False)
    try:
        with store.session() as s:
            return {
                c.case_key: (c, p)
                for c, p in s.execute(
                    select(Case, Prediction).join(Prediction, Prediction.case_id == Case.id)
                )
            }
    finally:
        store.dispose()


def test_csv_manifest_of_real_photographs(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = (
        "data:\n  kind: csv\n  path: manifest.csv\n  labels: [none, crack, scratch, pit]\n"
        "  split_column: null\n  mask_labels: {1: crack}\n"
    )
    protocol = _protocol(tmp_path / "study", data, n_cases=len(GRAY))
    images = protocol.parent / "images"
    images.mkdir()
    labels = ["none", "crack", "scratch", "pit"]
    rows = []
    for i, (name, loader, _label, site, *_rest) in enumerate(GRAY):
        pixels = loader()
        Image.fromarray(pixels).save(images / f"{name}.png")
        Image.fromarray(otsu_mask(pixels)).save(images / f"{name}_mask.png")
        rows.append([f"images/{name}.png", labels[i % 4], f"images/{name}_mask.png", site])
    write_csv(protocol.parent / "manifest.csv", ["image_path", "label", "mask_path", "site"], rows)
    db = f"sqlite:///{tmp_path / 'real.db'}"
    # the data path is under test here; the pre-flight runs every arm on two 512x512
    # photographs through a model that does not resize them, a minute of CPU time
    assert cli("--db", db, "register", "--no-preflight", str(protocol)).exit_code == 0
    result = cli("--db", db, "sample", "--data-dir", str(tmp_path / "cache"))
    assert result.exit_code == 0, result.output
    enrolled = _enrolled(db)
    assert set(enrolled) == {f"images/{r[0]}.png" for r in GRAY}
    for key, (case, pred) in enrolled.items():
        path = protocol.parent / key
        assert case.image_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
        assert case.mask_source and case.meta["site"] in {"north", "south"}
        assert 0 < pred.probability_calibrated <= 1


def test_dicom_series(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from pydicom.data import get_testdata_file

    names = ["CT_small.dcm", "MR_small.dcm"]
    paths = [get_testdata_file(n) for n in names]
    if any(p is None for p in paths):
        pytest.skip("pydicom's small test files are not available offline")
    protocol = _protocol(
        tmp_path / "study",
        "data:\n  kind: dicom\n  path: series\n  labels: [none, crack, scratch, pit]\n  split_column: null\n  mask_column: null\n",
        n_cases=2,
    )
    series = protocol.parent / "series"
    series.mkdir()
    for name, src in zip(names, paths, strict=True):
        shutil.copy(str(src), series / name)
    write_csv(
        series / "labels.csv",
        ["file", "label"],
        [["CT_small.dcm", "none"], ["MR_small.dcm", "pit"]],
    )
    db = f"sqlite:///{tmp_path / 'dicom.db'}"
    assert cli("--db", db, "register", str(protocol)).exit_code == 0
    result = cli("--db", db, "sample", "--data-dir", str(tmp_path / "cache"))
    assert result.exit_code == 0, result.output
    enrolled = _enrolled(db)
    assert len(enrolled) == 2
    for case, _pred in enrolled.values():
        assert case.meta["modality"] in {"CT", "MR"}
        assert "rescale_slope" in case.meta and "rescale_intercept" in case.meta
        assert len(case.image_sha256) == 64


def _sample_refused(cli, tmp_path: Path, protocol: Path) -> str:  # type: ignore[no-untyped-def]
    """The pre-flight refuses at register; registered without it, sample refuses the same way.

    Both exit 2; register leaves no database, sample writes no case or prediction
    and the study stays registered. Returns sample's message.
    """
    db = f"sqlite:///{tmp_path / 'refused.db'}"
    early = cli("--db", db, "register", str(protocol))
    assert early.exit_code == 2, early.output
    assert "the pre-flight check found" in early.stderr
    assert not (tmp_path / "refused.db").exists()
    assert cli("--db", db, "register", "--no-preflight", str(protocol)).exit_code == 0
    result = cli("--db", db, "sample", "--data-dir", str(tmp_path / "cache"))
    assert result.exit_code == 2, result.output
    assert _enrolled(db) == {}
    store = open_store(db, create=False)
    try:
        with store.session() as s:
            assert s.scalars(select(Case)).first() is None
    finally:
        store.dispose()
    assert "registered" in cli("--db", db, "status").stdout
    return result.stderr


def test_sample_refuses_manifest_rows_leaving_the_data_root(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = (
        "data:\n  kind: csv\n  path: data/manifest.csv\n  labels: [none, crack, scratch, pit]\n"
        "  split_column: null\n"
    )
    protocol = _protocol(tmp_path / "study", data, n_cases=1)
    (protocol.parent / "data").mkdir()
    (tmp_path / "private").mkdir()
    pixels = GRAY[0][1]()
    Image.fromarray(pixels).save(protocol.parent / "data" / "ok.png")
    Image.fromarray(pixels).save(tmp_path / "private" / "secret.png")
    write_csv(
        protocol.parent / "data" / "manifest.csv",
        ["image_path", "label"],
        [["ok.png", "none"], ["../../../private/secret.png", "pit"]],
    )
    stderr = _sample_refused(cli, tmp_path, protocol)
    assert "has 1 bad row, so none of its cases were read" in stderr
    assert "row 3: image_path '../../../private/secret.png' lies outside the data root" in stderr
    assert "data.allow_outside_root: true" in stderr


def test_sample_refuses_a_data_path_that_is_not_a_manifest(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = "data:\n  kind: csv\n  path: ../../etc/passwd\n  labels: [none, crack, scratch, pit]\n"
    protocol = _protocol(tmp_path / "study", data, n_cases=1)
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    stderr = _sample_refused(cli, tmp_path, protocol)
    assert "passwd' is not a CSV manifest: its first line is not a header" in stderr
    assert "root:x" not in stderr and "/bin/bash" not in stderr
