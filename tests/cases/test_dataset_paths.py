"""Tests of studyhub/cases/dataset.py and its layouts: paths that leave the data root, files
that are not manifests, and progress while a data source is read."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from studyhub.cases import read_cases
from studyhub.errors import DataError
from studyhub.protocol.schema import DataSource
from tests.cases.helpers import LABELS, write_csv

SECRET = "TOP SECRET: the launch codes"


def _csv(path: str | Path, **kwargs: object) -> DataSource:
    return DataSource(kind="csv", path=str(path), labels=LABELS, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    """tmp/data/{a,b}.png (the data root) and tmp/outside/secret.png, a text file."""
    (tmp_path / "data").mkdir()
    (tmp_path / "outside").mkdir()
    for name, value in (("a", 10), ("b", 200)):
        Image.fromarray(np.full((8, 8), value, np.uint8)).save(tmp_path / "data" / f"{name}.png")
    Image.fromarray(np.ones((8, 8), np.uint8)).save(tmp_path / "data" / "mask.png")
    (tmp_path / "outside" / "secret.png").write_text(SECRET)
    return tmp_path


def _refused(data: DataSource, base: Path, **kwargs: object) -> str:
    with pytest.raises(DataError) as err:
        read_cases(data, base, **kwargs)  # type: ignore[arg-type]
    message = str(err.value)
    assert SECRET not in message
    assert "not a readable image" not in message  # the outside file was never decoded
    return message


def test_a_row_leaving_the_manifest_folder_is_refused(layout: Path) -> None:
    manifest = write_csv(
        layout / "data" / "manifest.csv",
        ["image_path", "label"],
        [["a.png", "benign"], ["../outside/secret.png", "normal"]],
    )
    message = _refused(_csv(manifest), layout)
    root = str((layout / "data").resolve())
    assert "has 1 bad row, so none of its cases were read" in message
    assert f"row 3: image_path '../outside/secret.png' lies outside the data root {root!r}" in (
        message
    )
    assert f"(it resolves to {str((layout / 'outside' / 'secret.png').resolve())!r})" in message
    assert "move the file into the manifest's folder, or set data.allow_outside_root: true" in (
        message
    )


def test_allow_outside_root_lets_such_rows_in(layout: Path) -> None:
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(layout / "outside" / "ok.png")
    manifest = write_csv(
        layout / "data" / "manifest.csv",
        ["image_path", "label", "mask_path"],
        [["a.png", "benign", "mask.png"], ["../outside/ok.png", "normal", "mask.png"]],
    )
    _refused(_csv(manifest), layout)
    records = read_cases(_csv(manifest, allow_outside_root=True), layout)
    assert [r.path for r in records] == [
        (layout / "data" / "a.png").resolve(),
        (layout / "outside" / "ok.png").resolve(),
    ]


def test_every_escaping_row_is_listed_first_few_and_counted(layout: Path) -> None:
    rows = [[f"../outside/x{i}.png", "benign"] for i in range(24)]
    rows.append([str((layout / "outside" / "secret.png").resolve()), "normal"])  # absolute
    rows.append(["a.png", "benign", "../outside/secret.png"])  # a mask
    manifest = write_csv(layout / "data" / "m.csv", ["image_path", "label", "mask_path"], rows)
    message = _refused(_csv(manifest), layout, max_errors=5)
    assert "has 26 bad rows" in message
    assert message.count("lies outside the data root") == 5
    assert "  ... and 21 more bad rows" in message
    message = _refused(_csv(manifest), layout, max_errors=30)
    assert message.count("lies outside the data root") == 26
    assert f"row 26: image_path {str((layout / 'outside' / 'secret.png').resolve())!r} lies" in (
        message
    )
    assert "row 27: mask_path '../outside/secret.png' lies outside the data root" in message


def test_a_link_out_of_the_manifest_folder_is_refused(layout: Path) -> None:
    (layout / "data" / "innocent.png").symlink_to(layout / "outside" / "secret.png")
    (layout / "data" / "alias.png").symlink_to(layout / "data" / "b.png")  # stays inside: fine
    manifest = write_csv(
        layout / "data" / "m.csv",
        ["image_path", "label"],
        [["alias.png", "benign"], ["innocent.png", "normal"]],
    )
    message = _refused(_csv(manifest), layout)
    assert "has 1 bad row" in message
    assert "row 3: image_path 'innocent.png' lies outside the data root" in message
    assert "secret.png" in message  # where the link points


def test_a_link_out_of_a_class_folder_is_refused(layout: Path) -> None:
    root = layout / "classes"
    (root / "benign").mkdir(parents=True)
    (root / "normal").mkdir()
    shutil.copy(layout / "data" / "a.png", root / "benign" / "a.png")
    (root / "normal" / "leak.png").symlink_to(layout / "outside" / "secret.png")
    data = DataSource(kind="folders", path="classes", labels=LABELS)
    message = _refused(data, layout)
    assert "class-folder data set" in message and "has 1 bad file" in message
    assert "file 'normal/leak.png': image 'normal/leak.png' lies outside the data root" in message
    assert "move the file into the data folder, or set data.allow_outside_root: true" in message
    # with the flag, the (here unreadable) target is read like any image
    with pytest.raises(DataError, match="is not a readable image"):
        read_cases(data.model_copy(update={"allow_outside_root": True}), layout)


def test_dicom_rows_and_links_leaving_the_folder_are_refused(layout: Path) -> None:
    from pydicom.data import get_testdata_file

    source = get_testdata_file("CT_small.dcm")
    if source is None:  # pragma: no cover - depends on the pydicom build
        pytest.skip("pydicom test file CT_small.dcm is not available offline")
    series = layout / "series"
    series.mkdir()
    shutil.copy(str(source), series / "ct.dcm")
    shutil.copy(str(source), layout / "outside" / "other.dcm")
    shutil.copy(str(source), layout / "outside" / "unlisted.dcm")
    (series / "linked.dcm").symlink_to(layout / "outside" / "unlisted.dcm")
    write_csv(
        series / "labels.csv",
        ["file", "label"],
        [["ct.dcm", "benign"], ["../outside/other.dcm", "normal"]],
    )
    message = _refused(DataSource(kind="dicom", path="series", labels=LABELS), layout)
    assert "has 2 bad rows" in message  # the row and the unlisted link
    assert "row 3: file '../outside/other.dcm' lies outside the data root" in message
    assert "file 'linked.dcm': links to" in message and "outside the DICOM folder" in message


# --- files that are not CSV manifests -----------------------------------------------------


def test_a_text_file_that_is_not_a_manifest_is_named_so_and_never_quoted(tmp_path: Path) -> None:
    passwd = tmp_path / "etc" / "passwd"
    passwd.parent.mkdir()
    passwd.write_text("root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin\n")
    (tmp_path / "protocols").mkdir()
    with pytest.raises(DataError) as err:
        read_cases(_csv("../etc/passwd"), tmp_path / "protocols")
    message = str(err.value)
    assert "passwd' is not a CSV manifest: its first line is not a header" in message
    assert "point data.path at the CSV manifest" in message
    assert "root:" not in message and "/bin/bash" not in message


def test_a_binary_file_is_not_a_manifest(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "image.png")
    with pytest.raises(DataError, match=r"is not a CSV manifest: it holds binary data"):
        read_cases(_csv("image.png"), tmp_path)
    (tmp_path / "latin1.csv").write_bytes(b"image_path,label\n\xe9t\xe9.png,benign\n")
    with pytest.raises(DataError, match=r"is not UTF-8 text, so not a CSV manifest \(byte 0xe9"):
        read_cases(_csv("latin1.csv"), tmp_path)


def test_column_lists_in_messages_are_shortened(tmp_path: Path) -> None:
    line = ",".join(f"{'field' * 20}{i}" for i in range(15))
    (tmp_path / "data.json").write_text(line + "\n" + line + "\n")
    with pytest.raises(DataError) as err:
        read_cases(_csv("data.json"), tmp_path)
    message = str(err.value)
    assert "lacks required column(s) ['image_path', 'label']" in message
    assert "and 5 more (none of them is a column a manifest needs: is this file the CSV" in message
    assert "'fieldfieldfieldfieldfieldfieldfieldfiel…'" in message
    assert "field" * 20 not in message


# --- progress -----------------------------------------------------------------------------


def test_progress_hears_reading_and_checking(layout: Path) -> None:
    rows = [["a.png" if i % 2 else "b.png", "benign"] for i in range(2)]
    rows += [[f"c{i}.png", "normal"] for i in range(40)]
    for i in range(40):
        (layout / "data" / f"c{i}.png").hardlink_to(layout / "data" / "a.png")
    manifest = write_csv(layout / "data" / "m.csv", ["image_path", "label"], rows)
    calls: list[tuple[str, int, int]] = []
    records = read_cases(
        _csv(manifest), layout, progress=lambda *call: calls.append(call), workers=3
    )
    assert len(records) == 42
    reading = [c for c in calls if c[0] == "reading manifest"]
    checking = [c for c in calls if c[0] == "checking image files"]
    size = manifest.stat().st_size
    assert reading[-1] == ("reading manifest", size, size)
    assert checking[-1] == ("checking image files", 42, 42)
    assert [c[1] for c in checking] == sorted(c[1] for c in checking)  # never goes back
    # identical files are decoded once, but every row gets its own checksum and shape
    assert {r.image_sha256 for r in records[2:]} == {records[1].image_sha256}
    assert all(r.shape == (8, 8) for r in records)
