"""Tests of studyhub/cases/dataset.py (and the layouts it reads): CSV manifests of real
images, class folders, the demo data set, and refusing broken manifests as a whole."""

from __future__ import annotations

import hashlib
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from studyhub.cases import CaseRecord, load_image, load_mask, read_cases
from studyhub.demo.synth import CLASS_NAMES
from studyhub.errors import DataError, InputError
from studyhub.protocol.schema import DataSource
from tests.cases.helpers import LABELS, REAL, otsu_mask, write_csv


def _csv(path: str | Path, **kwargs: object) -> DataSource:
    return DataSource(kind="csv", path=str(path), labels=LABELS, **kwargs)  # type: ignore[arg-type]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- a CSV manifest of real photographs ---------------------------------------------------


def test_real_images_enroll_with_checksums_labels_metadata_and_masks(
    tmp_path: Path, real_manifest: Path, real_images: dict[str, np.ndarray]
) -> None:
    records = read_cases(_csv("data/manifest.csv"), tmp_path)

    assert [r.case_key for r in records] == [f"images/{name}.png" for name, *_ in REAL]
    assert [r.row for r in records] == [2, 3, 4, 5, 6]
    for record, (name, _, label, site, scanner, *_rest) in zip(records, REAL, strict=True):
        image_file = tmp_path / "data" / "images" / f"{name}.png"
        assert record.path == image_file.resolve()
        assert record.source == f"images/{name}.png"
        assert record.image_sha256 == _sha(image_file)
        assert record.label == label
        assert record.metadata["site"] == site
        assert record.metadata["scanner"] == scanner  # '007' has a leading zero: text
        pixels = load_image(record)
        assert pixels.dtype == np.float32
        assert pixels.shape == real_images[name].shape == record.shape
        np.testing.assert_array_equal(pixels, real_images[name].astype(np.float32) / 255)
        mask = load_mask(record)
        if record.mask_path is None:
            assert name == "page"
            assert mask is None
        else:
            assert mask is not None
            assert mask.shape == pixels.shape[:2]
            np.testing.assert_array_equal(mask, otsu_mask(real_images[name]))
    camera, coins, moon, page, astronaut = records
    assert camera.split == "test" and moon.split == "train"
    # Typed per column: float, int and bool columns; the astronaut is colour, kept RGB.
    assert camera.metadata["dose"] == 1.5 and astronaut.metadata["dose"] == pytest.approx(0.3)
    assert page.metadata["dose"] == 1.0 and isinstance(page.metadata["dose"], float)
    assert coins.metadata["slices"] == 30 and isinstance(coins.metadata["slices"], int)
    assert camera.metadata["contrast"] is True and moon.metadata["contrast"] is True
    assert coins.metadata["contrast"] is False
    assert astronaut.shape == (512, 512, 3)
    assert camera.mask_source == "masks/camera.png"


def test_case_id_column_is_the_key_and_absolute_paths_work(
    tmp_path: Path, real_images: dict[str, np.ndarray]
) -> None:
    absolute = (tmp_path / "data" / "images" / "coins.png").resolve()
    manifest = write_csv(
        tmp_path / "elsewhere" / "list.csv",
        ["case_id", "image_path", "label"],
        [["c-1", str(absolute), "benign"], ["c-2", "../data/images/moon.png", "normal"]],
    )
    # both paths leave the manifest's folder: allowed only when the protocol says so
    with pytest.raises(DataError, match="has 2 bad rows"):
        read_cases(_csv(manifest), tmp_path / "unrelated")
    records = read_cases(_csv(manifest, allow_outside_root=True), tmp_path / "unrelated")

    assert [r.case_key for r in records] == ["c-1", "c-2"]
    assert records[0].path == absolute
    assert records[1].path == (tmp_path / "data" / "images" / "moon.png").resolve()
    # mask_path and split columns with their default names may be absent ...
    assert all(r.mask_path is None and r.split is None for r in records)
    assert "case_id" not in records[0].metadata
    # ... also when every default is spelled out, as in a canonical protocol.
    spelled = _csv(manifest, mask_column="mask_path", split_column="split", allow_outside_root=True)
    assert read_cases(spelled, tmp_path / "unrelated") == records


def test_renamed_columns(tmp_path: Path, real_images: dict[str, np.ndarray]) -> None:
    manifest = write_csv(
        tmp_path / "data" / "m.csv",
        ["file", "diagnosis", "seg", "fold", "site"],
        [["images/camera.png", "normal", "masks/camera.png", "test", "x"]],
    )
    data = _csv(
        manifest,
        image_column="file",
        label_column="diagnosis",
        mask_column="seg",
        split_column="fold",
    )
    (record,) = read_cases(data, tmp_path)
    assert record.label == "normal" and record.split == "test"
    assert record.mask_path is not None and record.metadata == {"site": "x"}


def test_missing_required_or_named_column_is_refused(
    tmp_path: Path, real_images: dict[str, np.ndarray]
) -> None:
    manifest = write_csv(
        tmp_path / "data" / "m.csv", ["image_path", "diagnosis"], [["images/camera.png", "x"]]
    )
    with pytest.raises(DataError, match=r"lacks required column\(s\) \['label'\]") as err:
        read_cases(_csv(manifest), tmp_path)
    assert "its columns are ['image_path', 'diagnosis']" in str(err.value)
    assert "data.label_column" in str(err.value)

    manifest = write_csv(
        tmp_path / "data" / "m.csv", ["image_path", "label"], [["images/camera.png", "benign"]]
    )
    with pytest.raises(DataError, match=r"lacks required column\(s\) \['seg'\]"):
        read_cases(_csv(manifest, mask_column="seg"), tmp_path)


# --- broken manifests are refused as a whole ---------------------------------------------


def test_three_broken_rows_are_named_in_one_message(
    tmp_path: Path, real_images: dict[str, np.ndarray]
) -> None:
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp_path / "data" / "masks" / "small.png")
    manifest = write_csv(
        tmp_path / "data" / "manifest.csv",
        ["image_path", "label", "mask_path"],
        [
            ["images/camera.png", "benign", "masks/camera.png"],
            ["images/missing.png", "benign", ""],
            ["images/coins.png", "malignant", "masks/coins.png"],
            ["images/moon.png", "tumour", ""],
            ["images/page.png", "normal", "masks/small.png"],
        ],
    )
    with pytest.raises(DataError) as err:
        read_cases(_csv(manifest), tmp_path)
    message = str(err.value)

    assert "has 3 bad rows" in message
    assert "none of its cases were read" in message
    lines = message.splitlines()[1:]
    assert len(lines) == 3
    assert lines[0].startswith("  row 3: image_path 'images/missing.png' does not exist")
    assert "correct the path (relative to the manifest's folder) or remove the row" in lines[0]
    assert lines[1].startswith("  row 5: label 'tumour' is not in data.labels")
    assert "add it to data.labels" in lines[1]
    assert lines[2].startswith("  row 6: mask_path 'masks/small.png' is 32x32 (HxW)")
    assert "but its image is 191x384" in lines[2]
    assert "..." not in message


def test_thirty_bad_rows_show_twenty_and_a_count(
    tmp_path: Path, real_images: dict[str, np.ndarray]
) -> None:
    rows = [["images/camera.png", "benign"]] + [
        [f"images/gone{i}.png", "benign"] for i in range(30)
    ]
    manifest = write_csv(tmp_path / "data" / "manifest.csv", ["image_path", "label"], rows)
    with pytest.raises(DataError) as err:
        read_cases(_csv(manifest), tmp_path)
    message = str(err.value)

    assert "has 30 bad rows" in message
    listed = re.findall(r"^  row (\d+): image_path 'images/gone(\d+)\.png'", message, re.M)
    assert [int(row) for row, _ in listed] == list(range(3, 23))
    assert message.rstrip().endswith("... and 10 more bad rows")

    with pytest.raises(DataError, match=r"\.\.\. and 25 more bad rows"):
        read_cases(_csv(manifest), tmp_path, max_errors=5)


def test_every_kind_of_row_problem(tmp_path: Path, real_images: dict[str, np.ndarray]) -> None:
    data_dir = tmp_path / "data"
    (data_dir / "images" / "broken.png").write_text("not a png")
    Image.fromarray(np.zeros((512, 512, 3), np.uint8)).save(data_dir / "masks" / "rgb.png")
    manifest = write_csv(
        data_dir / "manifest.csv",
        ["case_id", "image_path", "label", "mask_path"],
        [
            ["a", "images/camera.png", "benign", ""],
            ["a", "images/coins.png", "benign", ""],  # duplicate key
            ["b", "images/broken.png", "benign", ""],  # unreadable
            ["c", "", "benign", ""],  # empty image
            ["d", "images/moon.png", "", ""],  # empty label
            ["e", "images/moon.png", "normal", "masks/rgb.png"],  # same file, colour mask
            ["f", "images", "normal", ""],  # a folder
            ["g", "images/page.png", "Benign", "masks/none.png"],  # label case, missing mask
            ["", "images/page.png", "benign", "", "extra"],  # empty key, extra cell
        ],
    )
    with pytest.raises(DataError) as err:
        read_cases(_csv(manifest), tmp_path)
    message = str(err.value)

    assert "has 8 bad rows" in message
    assert "row 3: case_id 'a' repeats row 2's" in message
    assert "row 4: image_path 'images/broken.png' is not a readable image" in message
    assert "row 5: image_path is empty" in message
    assert "row 6: label is empty" in message
    assert "row 7: image_path 'images/moon.png' is the same file as row 6's" in message
    assert "mask_path 'masks/rgb.png' is not a usable mask (it is a RGB image" in message
    assert "row 8: image_path 'images' is a folder, not a file" in message
    assert "row 9: label 'Benign' is not in data.labels" in message
    assert "(did you mean 'benign'?)" in message
    assert "mask_path 'masks/none.png' does not exist" in message
    assert "row 10: it has 5 cells but the header has 4 columns" in message
    assert "case_id is empty" in message


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "is empty; write a header row"),
        (b"image_path,label\n", "lists no cases; add one row per case"),
        (b"image_path,label,label\nx,y,z\n", "repeated column name(s) ['label']"),
        (b"image_path,,label\n", "unnamed column(s) at position(s) [2]"),
        (b"image_path,label\n\xff\xfe,x\n", "is not UTF-8 text"),
    ],
)
def test_unusable_manifest_files(tmp_path: Path, content: bytes, expected: str) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_bytes(content)
    with pytest.raises(DataError) as err:
        read_cases(_csv(manifest), tmp_path)
    assert expected in str(err.value)


def test_missing_manifest_and_wrong_kind(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"does not exist; check data\.path"):
        read_cases(_csv("nope.csv"), tmp_path)
    with pytest.raises(DataError, match=r"is a folder but data\.kind is csv"):
        read_cases(_csv("."), tmp_path)
    with pytest.raises(DataError, match=r"is not a folder; for kind folders"):
        read_cases(DataSource(kind="folders", path="nope", labels=LABELS), tmp_path)


def test_byte_order_mark_and_blank_lines(
    tmp_path: Path, real_images: dict[str, np.ndarray]
) -> None:
    manifest = tmp_path / "data" / "m.csv"
    manifest.write_bytes("\ufeffimage_path,label\n\nimages/camera.png , benign\n".encode())
    (record,) = read_cases(_csv(manifest), tmp_path)
    assert record.label == "benign" and record.row == 3


def test_bad_arguments_raise_input_error(tmp_path: Path) -> None:
    data = _csv("m.csv")
    with pytest.raises(InputError, match="max_errors is 0; pass a positive integer"):
        read_cases(data, tmp_path, max_errors=0)
    with pytest.raises(InputError, match="data is a dict"):
        read_cases({"kind": "csv"}, tmp_path)  # type: ignore[arg-type]


def test_load_image_refuses_a_changed_file(
    tmp_path: Path, real_manifest: Path, real_images: dict[str, np.ndarray]
) -> None:
    record = read_cases(_csv(real_manifest), tmp_path)[0]
    Image.fromarray(real_images["camera"][::-1]).save(record.path)
    with pytest.raises(DataError, match="changed since it was read"):
        load_image(record)
    assert load_image(record, verify=False).shape == (512, 512)
    with pytest.raises(InputError, match="pass a CaseRecord"):
        load_image("camera.png")  # type: ignore[arg-type]


def test_sixteen_bit_and_palette_images(tmp_path: Path) -> None:
    wide = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 16).astype(np.uint16)
    Image.fromarray(wide).save(tmp_path / "wide.png")
    palette = Image.fromarray(np.arange(64 * 64, dtype=np.uint8).reshape(64, 64) % 3, mode="L")
    palette = palette.convert("P")
    palette.save(tmp_path / "labels.png")
    manifest = write_csv(
        tmp_path / "m.csv",
        ["image_path", "label", "mask_path"],
        [["wide.png", "normal", "labels.png"]],
    )
    (record,) = read_cases(_csv(manifest), tmp_path)
    np.testing.assert_allclose(load_image(record), wide / 65535.0, rtol=1e-6)
    mask = load_mask(record)
    assert mask is not None and mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1, 2}


# --- class folders ------------------------------------------------------------------------


def _folders(tmp_path: Path, real_images: dict[str, np.ndarray]) -> Path:
    root = tmp_path / "classes"
    for name, _, label, *_ in REAL:
        sub = root / label / ("batch1" if name == "moon" else "")
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(real_images[name]).save(sub / f"{name}.png")
    (root / "benign" / "notes.txt").write_text("ignored")
    (root / "masks" / "benign").mkdir(parents=True)
    Image.fromarray(otsu_mask(real_images["camera"])).save(root / "masks/benign/camera.png")
    return root


def test_class_folders(tmp_path: Path, real_images: dict[str, np.ndarray]) -> None:
    root = _folders(tmp_path, real_images)
    records = read_cases(DataSource(kind="folders", path="classes", labels=LABELS), tmp_path)

    assert [(r.case_key, r.label) for r in records] == [
        ("benign/camera.png", "benign"),
        ("benign/page.png", "benign"),
        ("malignant/astronaut.png", "malignant"),
        ("malignant/coins.png", "malignant"),
        ("normal/batch1/moon.png", "normal"),
    ]
    assert [r.row for r in records] == [1, 2, 3, 4, 5]
    assert records[0].mask_path == (root / "masks/benign/camera.png").resolve()
    assert all(r.mask_path is None for r in records[1:])
    assert all(r.split is None and r.metadata == {} for r in records)
    assert records[4].image_sha256 == _sha(root / "normal/batch1/moon.png")


def test_class_folders_refuse_strays(tmp_path: Path, real_images: dict[str, np.ndarray]) -> None:
    root = _folders(tmp_path, real_images)
    (root / "malignent").mkdir()
    Image.fromarray(real_images["camera"]).save(root / "loose.png")
    Image.fromarray(otsu_mask(real_images["coins"])).save(root / "masks/benign/coins.png")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "masks/benign/page.png")

    with pytest.raises(DataError) as err:
        read_cases(DataSource(kind="folders", path=str(root), labels=LABELS), tmp_path)
    message = str(err.value)
    assert "has 4 bad files" in message
    assert "file 'benign/page.png': mask 'masks/benign/page.png' is 8x8 (HxW)" in message
    assert "folder 'malignent': 'malignent' is not in data.labels" in message
    assert "(did you mean 'malignant'?)" in message
    assert "file 'loose.png': image outside the class folders" in message
    assert "file 'masks/benign/coins.png': mask without an image" in message


# --- the demo data set --------------------------------------------------------------------


def test_demo_is_materialised_once_and_reused(tmp_path: Path) -> None:
    data = DataSource(kind="demo", labels=list(CLASS_NAMES), demo_cases_per_split=10)
    cache = tmp_path / "cache"
    first = read_cases(data, tmp_path, cache_dir=cache)
    (folder,) = cache.iterdir()
    stamps = {p: p.stat().st_mtime_ns for p in folder.rglob("*")}

    second = read_cases(data, tmp_path, cache_dir=cache)

    assert len(first) == 30
    assert [(r.case_key, r.image_sha256) for r in first] == [
        (r.case_key, r.image_sha256) for r in second
    ]
    assert list(cache.iterdir()) == [folder]
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*")} == stamps
    record = first[0]
    assert record.case_key == "train-0-00000" and record.split == "train"
    assert set(record.metadata) == {"line", "lighting", "stamp"}
    assert isinstance(record.metadata["stamp"], bool)
    assert record.mask_path is not None and record.image_sha256 == _sha(record.path)
    assert {r.split for r in first} == {"train", "calibration", "test"}


def test_demo_seed_and_default_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STUDYHUB_CACHE_DIR", str(tmp_path / "env-cache"))
    data = DataSource(kind="demo", labels=list(CLASS_NAMES), demo_cases_per_split=10)
    zero = read_cases(data, tmp_path)
    other = read_cases(data, tmp_path, demo_seed=1)
    assert len(os.listdir(tmp_path / "env-cache")) == 2
    assert zero[0].image_sha256 != other[0].image_sha256


def test_demo_refuses_other_labels(tmp_path: Path) -> None:
    data = DataSource(kind="demo", labels=["pit", "crack", "scratch", "none"])
    with pytest.raises(DataError, match=r"set data.labels: \[none, crack, scratch, pit\]"):
        read_cases(data, tmp_path, cache_dir=tmp_path)
    assert not list(tmp_path.iterdir())


def test_records_are_hashable_and_frozen(
    tmp_path: Path, real_manifest: Path, real_images: dict[str, np.ndarray]
) -> None:
    records = read_cases(_csv(real_manifest), tmp_path)
    assert len(set(records)) == len(records)
    with pytest.raises(AttributeError):
        records[0].label = "normal"  # type: ignore[misc]
    assert isinstance(records[0], CaseRecord)


def test_two_thousand_small_images_read_in_seconds(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(2000):
        Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8)).save(tmp_path / f"{i}.png")
        rows.append([f"{i}.png", LABELS[i % 3]])
    manifest = write_csv(tmp_path / "m.csv", ["image_path", "label"], rows)
    start = time.perf_counter()
    records = read_cases(_csv(manifest), tmp_path)
    elapsed = time.perf_counter() - start
    assert len(records) == 2000
    assert elapsed < 20.0, f"reading 2000 64x64 PNGs took {elapsed:.1f} s"
