"""Tests of studyhub/cases/dicom.py and the dicom data-source kind: a small series of
pydicom's own test files (shipped with pydicom, no download) with a labels.csv."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from studyhub.cases import load_image, read_cases
from studyhub.cases.dicom import read_dicom, to_unit_range
from studyhub.errors import DataError
from studyhub.protocol.schema import DataSource
from tests.cases.helpers import write_csv

LABELS = ["normal", "abnormal"]


def _testfile(name: str) -> Path:
    path = get_testdata_file(name)
    if path is None:  # pragma: no cover - depends on the pydicom build
        pytest.skip(f"pydicom test file {name} is not available offline")
    return Path(str(path))


@pytest.fixture
def series(tmp_path: Path) -> Path:
    """CT_small and MR_small as shipped, plus copies with their tags changed."""
    root = tmp_path / "series"
    root.mkdir()
    shutil.copy(_testfile("CT_small.dcm"), root / "ct.dcm")  # slope 1, intercept -1024
    shutil.copy(_testfile("MR_small.dcm"), root / "mr.dcm")  # window 600/1600, no slope
    ct = pydicom.dcmread(_testfile("CT_small.dcm"))
    ct.WindowCenter, ct.WindowWidth = "40", "400"
    ct.save_as(root / "ct_windowed.dcm")
    mr = pydicom.dcmread(_testfile("MR_small.dcm"))
    mr.RescaleSlope, mr.RescaleIntercept = "2.5", "-100"
    mr.WindowCenter, mr.WindowWidth = ["1500", "40"], ["3000", "400"]  # two windows
    (root / "sub").mkdir()
    mr.save_as(root / "sub" / "mr_rescaled")  # no suffix: found by its DICM preamble
    write_csv(
        root / "labels.csv",
        ["file", "label", "split", "site"],
        [
            ["ct.dcm", "normal", "test", "A"],
            ["mr.dcm", "abnormal", "test", "B"],
            ["ct_windowed.dcm", "abnormal", "train", "A"],
            ["sub/mr_rescaled", "normal", "test", "B"],
        ],
    )
    return root


def _dicom(path: Path | str) -> DataSource:
    return DataSource(kind="dicom", path=str(path), labels=LABELS)


def _window(hu: np.ndarray, center: float, width: float) -> np.ndarray:
    # DICOM PS3.3 C.11.2.1.2.1, linear VOI function, written out case by case.
    low = center - 0.5 - (width - 1) / 2
    high = center - 0.5 + (width - 1) / 2
    out = ((hu - (center - 0.5)) / (width - 1) + 0.5).astype(np.float64)
    out[hu <= low] = 0.0
    out[hu > high] = 1.0
    return out


def test_series_is_read_with_rescale_and_window(series: Path, tmp_path: Path) -> None:
    records = read_cases(_dicom("series"), tmp_path)

    assert [r.case_key for r in records] == [
        "ct.dcm",
        "mr.dcm",
        "ct_windowed.dcm",
        "sub/mr_rescaled",
    ]
    assert [r.label for r in records] == ["normal", "abnormal", "abnormal", "normal"]
    assert [r.split for r in records] == ["test", "test", "train", "test"]
    assert all(r.file_format == "dicom" for r in records)
    for record in records:
        assert record.image_sha256 == hashlib.sha256(record.path.read_bytes()).hexdigest()
        assert record.metadata["site"] in ("A", "B")
    ct, mr, ct_windowed, mr_rescaled = records

    # CT_small: RescaleSlope 1, RescaleIntercept -1024 in its own tags -> Hounsfield units.
    tags = pydicom.dcmread(ct.path)
    assert (float(tags.RescaleSlope), float(tags.RescaleIntercept)) == (1.0, -1024.0)
    hu = tags.pixel_array.astype(np.float64) * 1.0 - 1024.0
    np.testing.assert_array_equal(read_dicom(ct.path).values, hu)
    assert ct.metadata["rescale_slope"] == 1.0 and ct.metadata["rescale_intercept"] == -1024.0
    assert "window_center" not in ct.metadata and "window_width" not in ct.metadata
    # No window: min/max of the rescaled values.
    expected = (hu - hu.min()) / (hu.max() - hu.min())
    np.testing.assert_allclose(load_image(ct), expected, atol=1e-6)
    assert ct.shape == (128, 128) and ct.metadata["modality"] == "CT"

    # The same pixels under a soft-tissue window 40/400.
    assert ct_windowed.metadata["window_center"] == 40.0
    assert ct_windowed.metadata["window_width"] == 400.0
    np.testing.assert_allclose(load_image(ct_windowed), _window(hu, 40.0, 400.0), atol=1e-6)

    # MR_small: no rescale tags (identity), window 600/1600 kept for the viewer.
    tags = pydicom.dcmread(mr.path)
    assert "RescaleSlope" not in tags
    raw = tags.pixel_array.astype(np.float64)
    np.testing.assert_array_equal(read_dicom(mr.path).values, raw)
    assert mr.metadata["window_center"] == 600.0 and mr.metadata["window_width"] == 1600.0
    np.testing.assert_allclose(load_image(mr), _window(raw, 600.0, 1600.0), atol=1e-6)

    # Changed copy: slope 2.5, intercept -100, two windows (the first one is used).
    values = raw * 2.5 - 100.0
    np.testing.assert_allclose(read_dicom(mr_rescaled.path).values, values)
    assert mr_rescaled.metadata["rescale_slope"] == 2.5
    assert mr_rescaled.metadata["rescale_intercept"] == -100.0
    assert mr_rescaled.metadata["window_center"] == 1500.0
    assert mr_rescaled.metadata["window_width"] == 3000.0
    np.testing.assert_allclose(load_image(mr_rescaled), _window(values, 1500, 3000), atol=1e-6)


def test_no_patient_identifiers_in_metadata(series: Path, tmp_path: Path) -> None:
    records = read_cases(_dicom(series), tmp_path)
    tags = pydicom.dcmread(records[0].path)
    assert str(tags.PatientName)  # the test file does carry a name ...
    for record in records:  # ... which never reaches the case metadata
        assert str(tags.PatientName) not in map(str, record.metadata.values())
        assert set(record.metadata) <= {
            "site",
            "modality",
            "photometric_interpretation",
            "rescale_slope",
            "rescale_intercept",
            "window_center",
            "window_width",
        }


def test_monochrome1_is_inverted(tmp_path: Path) -> None:
    ds = pydicom.dcmread(_testfile("MR_small.dcm"))
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.save_as(tmp_path / "inv.dcm")
    inverted = to_unit_range(read_dicom(tmp_path / "inv.dcm"))
    upright = to_unit_range(read_dicom(_testfile("MR_small.dcm")))
    np.testing.assert_allclose(inverted, 1.0 - upright, atol=1e-6)


def test_colour_dicom_keeps_rgb(tmp_path: Path) -> None:
    image = read_dicom(_testfile("ExplVR_BigEnd.dcm"))
    unit = to_unit_range(image)
    assert unit.shape == (60, 80, 3) and unit.dtype == np.float32
    assert unit.min() >= 0.0 and unit.max() <= 1.0


def test_unlisted_unreadable_and_multiframe_files_are_refused(series: Path, tmp_path: Path) -> None:
    shutil.copy(_testfile("MR_small.dcm"), series / "forgotten.dcm")
    shutil.copy(_testfile("rtdose.dcm"), series / "dose.dcm")
    (series / "cut.dcm").write_bytes(_testfile("CT_small.dcm").read_bytes()[:1000])
    with (series / "labels.csv").open("a", encoding="utf-8") as handle:
        handle.write("dose.dcm,normal,test,A\ncut.dcm,normal,test,A\nmissing.dcm,normal,test,A\n")

    with pytest.raises(DataError) as err:
        read_cases(_dicom(series), tmp_path)
    message = str(err.value)

    assert message.startswith(f"DICOM labels file {str(series / 'labels.csv')!r} has 4 bad rows")
    assert "row 6: file 'dose.dcm' is not a readable image (it has 15 frames;" in message
    assert "row 7: file 'cut.dcm' is not a readable image" in message
    assert "row 8: file 'missing.dcm' does not exist" in message
    assert "(relative to the DICOM folder)" in message
    assert "file 'forgotten.dcm': DICOM file not listed in labels.csv" in message


def test_missing_labels_csv(tmp_path: Path) -> None:
    (tmp_path / "series").mkdir()
    shutil.copy(_testfile("CT_small.dcm"), tmp_path / "series" / "ct.dcm")
    with pytest.raises(DataError, match=r"has no labels\.csv; write one with columns file,label"):
        read_cases(_dicom("series"), tmp_path)


def test_labels_csv_column_clashing_with_header(series: Path, tmp_path: Path) -> None:
    write_csv(
        series / "labels.csv",
        ["file", "label", "window_center"],
        [["ct.dcm", "normal", "7"], ["mr.dcm", "normal", "7"], ["ct_windowed.dcm", "normal", ""]],
    )
    (series / "sub" / "mr_rescaled").unlink()
    with pytest.raises(DataError) as err:
        read_cases(_dicom(series), tmp_path)
    message = str(err.value)
    assert "has 3 bad rows" in message
    for row in (2, 3, 4):
        assert (
            f"row {row}: column(s) ['window_center'] clash with values read from the DICOM"
            in message
        )


def test_dicom_in_a_csv_manifest_with_a_mask(tmp_path: Path) -> None:
    from PIL import Image

    shutil.copy(_testfile("MR_small.dcm"), tmp_path / "mr.dcm")
    Image.fromarray(np.ones((64, 64), np.uint8)).save(tmp_path / "mr_mask.png")
    write_csv(
        tmp_path / "m.csv",
        ["image_path", "label", "mask_path"],
        [["mr.dcm", "normal", "mr_mask.png"]],
    )
    (record,) = read_cases(DataSource(kind="csv", path="m.csv", labels=LABELS), tmp_path)
    assert record.file_format == "dicom" and record.metadata["window_center"] == 600.0
    assert load_image(record).shape == (64, 64)


# --- windows and stored modality values -------------------------------------------


def test_apply_window_is_the_linear_voi_function() -> None:
    from studyhub.cases.dicom import apply_window

    hu = np.array([[-1000.0, -160.0, -159.5, 39.5], [40.0, 239.0, 239.5, 3000.0]])
    # C.11.2.1.2.1 with c=40, w=400: 0 up to -160, 1 above 239, linear between.
    expected = np.array([[0.0, 0.0, 0.5 / 399, 199.5 / 399], [200.0 / 399, 1.0, 1.0, 1.0]])
    np.testing.assert_allclose(apply_window(hu, 40.0, 400.0), expected, atol=1e-12)
    np.testing.assert_allclose(apply_window(hu, 40.0, 400.0), _window(hu, 40.0, 400.0))
    # w <= 1 is the step at c - 0.5 (w = 1 exactly in DICOM)
    np.testing.assert_array_equal(apply_window(hu, 40.0, 0.5), (hu > 39.5).astype(float))
    for center, width in ((40.0, 0.0), (40.0, -1.0), (float("nan"), 400.0)):
        with pytest.raises(ValueError, match="give a finite centre and a width greater than 0"):
            apply_window(hu, center, width)


def test_modality_values_round_trip_without_pickle(series: Path, tmp_path: Path) -> None:
    import io
    import zlib

    from studyhub.cases import load_modality_values
    from studyhub.cases.dicom import modality_bytes, modality_from_bytes

    ct, _mr, _ctw, mr_rescaled = read_cases(_dicom("series"), tmp_path)
    values = load_modality_values(mr_rescaled)
    assert values is not None and values.dtype == np.float32
    raw = pydicom.dcmread(mr_rescaled.path).pixel_array.astype(np.float64)
    np.testing.assert_array_equal(values, (raw * 2.5 - 100.0).astype(np.float32))
    hu = load_modality_values(ct)
    assert hu is not None
    stored = pydicom.dcmread(ct.path).pixel_array.astype(np.float64)
    np.testing.assert_array_equal(hu, (stored - 1024.0).astype(np.float32))  # intercept -1024
    blob = modality_bytes(hu)
    assert len(blob) < hu.nbytes  # compressed
    assert np.load(io.BytesIO(zlib.decompress(blob)), allow_pickle=False).dtype == np.float32
    np.testing.assert_array_equal(modality_from_bytes(blob), hu)
    with pytest.raises(ValueError, match="cannot be read"):
        modality_from_bytes(b"not zlib")
    with pytest.raises(ValueError, match="expected a 2-D float32 array"):
        modality_from_bytes(zlib.compress(_npy(np.zeros(3))))
    with pytest.raises(ValueError, match=r"shape \(2, 2, 3\); pass one 2-D image"):
        modality_bytes(np.zeros((2, 2, 3)))


def _npy(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def test_modality_values_are_none_for_png_and_colour(tmp_path: Path) -> None:
    from PIL import Image

    from studyhub.cases import load_modality_values

    shutil.copy(_testfile("ExplVR_BigEnd.dcm"), tmp_path / "colour.dcm")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "plain.png")
    write_csv(
        tmp_path / "m.csv",
        ["image_path", "label"],
        [["colour.dcm", "normal"], ["plain.png", "abnormal"]],
    )
    colour, plain = read_cases(DataSource(kind="csv", path="m.csv", labels=LABELS), tmp_path)
    assert colour.file_format == "dicom" and plain.file_format == "image"
    assert load_modality_values(colour) is None
    assert load_modality_values(plain) is None


def test_modality_values_refuse_a_changed_file(series: Path, tmp_path: Path) -> None:
    from studyhub.cases import load_modality_values

    ct = read_cases(_dicom("series"), tmp_path)[0]
    ct.path.write_bytes(ct.path.read_bytes() + b"\0")
    with pytest.raises(DataError, match="changed since it was read"):
        load_modality_values(ct)
