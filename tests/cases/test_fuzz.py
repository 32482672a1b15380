"""Random manifests never crash read_cases: they read, or raise a DataError with a message."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from studyhub.cases import read_cases
from studyhub.errors import DataError
from studyhub.protocol.schema import DataSource

FUZZ = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

cells = st.one_of(
    st.text(max_size=12),
    st.sampled_from(
        ["a.png", "b.png", "m.png", "big.png", "junk.png", "", "..", "/", "x\x00y", "benign", "n"]
    ),
)
headers = st.lists(
    st.sampled_from(["image_path", "label", "mask_path", "split", "case_id", "site", "", "x"]),
    min_size=0,
    max_size=6,
)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny images, a mask, a mask of the wrong size and a broken PNG."""
    root = tmp_path_factory.mktemp("fuzz")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "a.png")
    Image.fromarray(np.full((8, 8), 200, np.uint8)).save(root / "b.png")
    Image.fromarray(np.ones((8, 8), np.uint8)).save(root / "m.png")
    Image.fromarray(np.ones((9, 8), np.uint8)).save(root / "big.png")
    (root / "junk.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    return root


@FUZZ
@given(
    header=headers,
    rows=st.lists(st.lists(cells, max_size=7), max_size=6),
    raw=st.one_of(st.none(), st.binary(max_size=60)),
)
def test_random_manifests_read_or_raise_data_error(
    root: Path, header: list[str], rows: list[list[str]], raw: bytes | None
) -> None:
    manifest = root / "manifest.csv"
    if raw is not None:
        manifest.write_bytes(raw)
    else:
        lines = [",".join(header)] + [",".join(c.replace(",", "") for c in row) for row in rows]
        manifest.write_text("\n".join(lines), encoding="utf-8", errors="surrogatepass")
    data = DataSource(kind="csv", path="manifest.csv", labels=["benign", "n"])
    try:
        records = read_cases(data, root, max_errors=3)
    except DataError as exc:
        assert str(exc)
        assert "\n" not in str(exc) or "  " in str(exc).splitlines()[1]
    else:
        assert records and all(len(r.image_sha256) == 64 for r in records)
