"""Tests of studyhub/cases/manifest.py: resolving cells to paths, and shortened column lists."""

from __future__ import annotations

from pathlib import Path

import pytest

from studyhub.cases.manifest import PathResolver, shown_columns


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """root/{img/a.png, link_dir -> img, link.png -> img/a.png, out.png -> ../elsewhere/x.png}."""
    root = tmp_path / "root"
    (root / "img").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (root / "img" / "a.png").write_bytes(b"a")
    (tmp_path / "elsewhere" / "x.png").write_bytes(b"x")
    (root / "link_dir").symlink_to(root / "img")
    (root / "link.png").symlink_to(root / "img" / "a.png")
    (root / "out.png").symlink_to(tmp_path / "elsewhere" / "x.png")
    (root / "img" / "up").symlink_to(tmp_path / "elsewhere")
    return root


CELLS = [
    "img/a.png",
    "img//a.png",
    "./img/./a.png",
    "link_dir/a.png",
    "link.png",
    "out.png",
    "img/up/x.png",
    "img/up/../a.png",  # '..' after a link: POSIX resolves the link first
    "../elsewhere/x.png",
    "missing/dir/file.png",
    "img/",
    ".",
    "..",
]


@pytest.mark.parametrize("cell", CELLS)
def test_resolver_agrees_with_path_resolve(tree: Path, cell: str) -> None:
    assert PathResolver(tree)(cell) == (tree / cell).resolve()


def test_absolute_cells_and_invalid_ones(tree: Path) -> None:
    resolve = PathResolver(tree)
    outside = tree.parent / "elsewhere" / "x.png"
    assert resolve(str(outside)) == outside.resolve()
    assert resolve("a\x00b.png") is None


@pytest.mark.parametrize(
    ("cell", "inside"),
    [
        ("img/a.png", True),
        ("link.png", True),
        ("link_dir/a.png", True),
        ("out.png", False),
        ("img/up/x.png", False),
        ("../elsewhere/x.png", False),
        ("../root", True),  # the root itself
        ("../root-sibling/x.png", False),  # a name that starts like the root is not in it
    ],
)
def test_inside_the_root(tree: Path, cell: str, inside: bool) -> None:
    resolve = PathResolver(tree)
    path = resolve(cell)
    assert path is not None and resolve.inside(path) is inside


def test_shown_columns_are_at_most_ten_and_cut() -> None:
    assert shown_columns(["a", "b"]) == "['a', 'b']"
    many = [f"c{i}" for i in range(13)]
    assert shown_columns(many) == f"{many[:10]} and 3 more"
    long = "x" * 100
    assert shown_columns([long]) == f"['{'x' * 39}…']"
