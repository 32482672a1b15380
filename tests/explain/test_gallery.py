"""The gallery in docs/gallery is what the renderer draws today: a changed look fails here.

Regenerate (after an intended change) with ``python scripts/make_gallery.py`` and commit
docs/gallery/. The hashes are of rendered arrays from fixed synthetic maps, not of PNG
bytes or model outputs, so they do not depend on zlib or on floating-point noise of a CPU.
"""

from __future__ import annotations

import importlib.util
import json
from types import ModuleType

from tests.paths import ROOT


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_gallery", ROOT / "scripts/make_gallery.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gallery_renderings_match_the_committed_hashes() -> None:
    gallery = _script()
    committed = json.loads((ROOT / "docs" / "gallery" / "hashes.json").read_text())
    found = gallery.hashes(gallery.render_cells())
    assert set(found) == set(committed)
    changed = sorted(k for k in found if found[k] != committed[k])
    assert changed == [], (
        f"the rendering of {changed} changed; if intended, run scripts/make_gallery.py and "
        "commit docs/gallery/"
    )
    assert (ROOT / "docs" / "gallery" / "gallery.png").stat().st_size > 10_000


def test_every_arm_of_the_demo_protocol_is_in_the_gallery() -> None:
    from studyhub.protocol.load import load_protocol

    gallery = _script()
    protocol, _ = load_protocol(ROOT / "protocols" / "inspection_demo.yaml")
    assert {a.id for a in protocol.arms} == set(gallery.ARMS)
