"""Tests of studyhub/commands/outputs.py: output paths are checked before any work."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from studyhub.commands.outputs import writable_file, writable_folder
from studyhub.errors import InputError


def test_a_file_in_an_existing_folder_is_accepted(tmp_path: Path) -> None:
    assert writable_file(tmp_path / "new.imrmc", option="--out") == tmp_path / "new.imrmc"
    (tmp_path / "old.imrmc").write_text("replaced")
    assert writable_file(tmp_path / "old.imrmc", option="--out") == tmp_path / "old.imrmc"
    assert writable_folder(tmp_path / "a" / "b", option="--out") == tmp_path / "a" / "b"
    assert not (tmp_path / "a").exists()  # checking creates nothing


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("missing/x.csv", "folder '{root}/missing' does not exist; create it first"),
        ("folder", "--imrmc-out '{root}/folder' is a folder; give the path of a file"),
        ("file.txt/x.csv", "'{root}/file.txt' is a file, not a folder"),
    ],
)
def test_unusable_output_files_are_refused(tmp_path: Path, target: str, expected: str) -> None:
    (tmp_path / "folder").mkdir()
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(InputError) as err:
        writable_file(tmp_path / target, option="--imrmc-out")
    assert expected.format(root=tmp_path) in str(err.value)


def test_unusable_output_folders_are_refused(tmp_path: Path) -> None:
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(InputError, match=r"--out '.*file\.txt' is a file; give a folder"):
        writable_folder(tmp_path / "file.txt", option="--out")
    with pytest.raises(InputError, match=r"'.*file\.txt' is a file, not a folder; give a folder"):
        writable_folder(tmp_path / "file.txt" / "sub", option="--out")


def test_read_only_folders_are_refused(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        if os.access(locked, os.W_OK):  # root ignores permissions
            pytest.skip("this user can write to read-only folders (root)")
        with pytest.raises(InputError, match=r"folder '.*locked' is not writable; choose"):
            writable_file(locked / "x.csv", option="--imrmc-out")
        with pytest.raises(InputError, match=r"it would be created in '.*locked'"):
            writable_folder(locked / "new", option="--out")
    finally:
        locked.chmod(0o755)
