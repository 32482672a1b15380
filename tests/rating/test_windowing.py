"""Window/level presets: the plain image of a DICOM item re-windowed for its rater."""

from __future__ import annotations

import io
import re
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import event, select

from studyhub.errors import AccessError, AuthError, InputError, LifecycleError
from studyhub.explain.render import panel_height, png_chunks
from studyhub.protocol.schema import Protocol
from studyhub.rating import next_item, window_presets_of, windowed_original
from studyhub.rating.accounts import revoke_rater
from studyhub.store import lifecycle
from studyhub.store.audit import append_event
from studyhub.store.models import Assignment, Case, Stimulus, Study
from tests.rating.conftest import STUDY, RatingStudy, answer_next

PRESETS = (
    "  opacity: 0.5\n"
    "  window_presets:\n"
    "    - {name: Soft tissue, center: 40, width: 400}\n"
    "    - {name: Lung, center: -600, width: 1500}\n"
    "    - {name: Bone, center: 300, width: 2000}\n"
)
NAMES = ("Soft tissue", "Lung", "Bone")
#: Modality values (HU) of the DICOM item, 2 x 2 so every pixel is a 224-pixel block.
RAW = np.array([[-1000.0, 39.0], [40.0, 3000.0]], dtype=np.float32)
SIDE = 448  # the demo protocol's canvas_px


def _stored(values: np.ndarray) -> bytes:
    """The documented storage format, written out here: zlib over float32 ``.npy``."""
    buffer = io.BytesIO()
    np.save(buffer, values.astype("<f4"), allow_pickle=False)
    return zlib.compress(buffer.getvalue())


def _give_raw(rs: RatingStudy, assignment_id: int, values: np.ndarray, **meta: str) -> None:
    """Store DICOM values (and case metadata) on the stimulus of an assignment."""
    with rs.store.write() as s:
        stim = s.get_one(Stimulus, s.get_one(Assignment, assignment_id).stimulus_id)
        stim.original_raw = _stored(values)
        if meta:
            s.get_one(Case, stim.case_id).meta = dict(meta)
        append_event(s, actor="test", action="test_setup", study_id=STUDY)


@pytest.fixture
def drs(make_study: Callable[..., RatingStudy], demo_copy: Path) -> RatingStudy:
    """The rating study with window presets; everyone's first item is a DICOM image."""
    demo_copy.write_text(
        demo_copy.read_text()
        .replace("  opacity: 0.5\n", PRESETS)
        # every image pixel one block, so that values can be checked by hand
        .replace("interpolation: bicubic", "interpolation: nearest")
    )
    rs = make_study()
    _give_raw(rs, rs.queue["alice"][0], RAW)
    return rs


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)))


def _blocks(pixels: np.ndarray) -> list[list[int]]:
    """The grey value of each 224-pixel block of the image area, checked to be uniform."""
    area = pixels[:SIDE]
    assert (area == area[..., :1]).all()  # grey: R = G = B
    out = []
    for rows in (slice(0, 224), slice(224, 448)):
        line = []
        for cols in (slice(0, 224), slice(224, 448)):
            block = area[rows, cols, 0]
            assert (block == block[0, 0]).all()
            line.append(int(block[0, 0]))
        out.append(line)
    return out


# --- the image ---------------------------------------------------------------------


def test_soft_tissue_window_by_hand(drs: RatingStudy) -> None:
    item = next_item(drs.store, drs.principals["alice"])
    assert item is not None
    png = windowed_original(drs.store, drs.principals["alice"], item.assignment_id, "Soft tissue")
    # DICOM PS3.3 C.11.2.1.2.1 with c=40, w=400: 0 for x <= -160, 1 for x > 239, else
    # (x - 39.5) / 399 + 0.5; then round(255 * y):
    #   -1000 -> 0;  39 -> (-0.5/399 + 0.5) * 255 = 127.18 -> 127;
    #   40 -> (0.5/399 + 0.5) * 255 = 127.82 -> 128;  3000 -> 255.
    assert _blocks(_pixels(png)) == [[0, 127], [128, 255]]
    pixels = _pixels(png)
    assert pixels.shape == (SIDE + panel_height(SIDE), SIDE, 3)  # render_original's canvas
    assert (pixels[SIDE:] == 255).all()  # blank panel
    assert png_chunks(png) == ["IHDR", "IDAT", "IEND"]
    assert not Image.open(io.BytesIO(png)).info


def test_lung_and_bone_windows_by_hand(drs: RatingStudy) -> None:
    item = next_item(drs.store, drs.principals["alice"])
    assert item is not None
    lung = windowed_original(drs.store, drs.principals["alice"], item.assignment_id, "Lung")
    # c=-600, w=1500: (x + 600.5) / 1499 + 0.5, clipped
    #   -1000 -> (-399.5/1499 + 0.5) * 255 = 59.54 -> 60;  39 -> 0.9264 * 255 = 236.2 -> 236;
    #   40 -> (640.5/1499 + 0.5) * 255 = 236.46 -> 236;  3000 -> 255.
    assert _blocks(_pixels(lung)) == [[60, 236], [236, 255]]
    bone = windowed_original(drs.store, drs.principals["alice"], item.assignment_id, "Bone")
    # c=300, w=2000: (x - 299.5) / 1999 + 0.5
    #   -1000 -> 0 (below -700);  39 -> (-260.5/1999 + 0.5) * 255 = 94.27 -> 94;
    #   40 -> (-259.5/1999 + 0.5) * 255 = 94.40 -> 94;  3000 -> 255.
    assert _blocks(_pixels(bone)) == [[0, 94], [94, 255]]


def test_monochrome1_is_inverted_like_the_served_image(drs: RatingStudy) -> None:
    first = drs.queue["alice"][0]
    _give_raw(drs, first, RAW, photometric_interpretation="MONOCHROME1")
    assert next_item(drs.store, drs.principals["alice"]) is not None
    png = windowed_original(drs.store, drs.principals["alice"], first, "Soft tissue")
    # 1 - y: 255, 255 - 127.18 = 127.82 -> 128, 127.18 -> 127, 0
    assert _blocks(_pixels(png)) == [[255, 128], [127, 0]]


def test_an_answered_item_can_still_be_rewindowed(drs: RatingStudy) -> None:
    item, _r = answer_next(drs, "alice")
    png = windowed_original(drs.store, drs.principals["alice"], item.assignment_id, "Bone")
    assert _blocks(_pixels(png))[0] == [0, 94]


# --- what a served item offers --------------------------------------------------------


def test_served_item_offers_presets_only_for_dicom_images(drs: RatingStudy) -> None:
    first, _r = answer_next(drs, "alice")
    second = next_item(drs.store, drs.principals["alice"])
    assert second is not None
    assert first.window_presets == NAMES  # DICOM values stored, in protocol order
    assert second.window_presets == ()  # a PNG: nothing to re-window


def test_protocol_without_presets_offers_none(rs: RatingStudy) -> None:
    _give_raw(rs, rs.queue["alice"][0], RAW)
    item = next_item(rs.store, rs.principals["alice"])
    assert item is not None and item.window_presets == ()
    with pytest.raises(InputError) as info:
        windowed_original(rs.store, rs.principals["alice"], item.assignment_id, "Lung")
    assert str(info.value) == (
        "window preset 'Lung' is not defined: this study's protocol has no window presets "
        "(rendering.window_presets); show the plain image as served"
    )


def test_window_presets_of() -> None:
    import yaml

    from tests.paths import DEMO_PROTOCOL

    data = yaml.safe_load(DEMO_PROTOCOL.read_text())
    plain = Protocol.model_validate(data)
    data["rendering"]["window_presets"] = [
        {"name": name, "center": 0.0, "width": 100.0} for name in ("Bone", "Lung")
    ]
    windowed = Protocol.model_validate(data)
    assert window_presets_of(windowed, True) == ("Bone", "Lung")  # protocol order
    assert window_presets_of(windowed, has_raw=False) == ()
    assert window_presets_of(plain, True) == ()


def test_next_item_does_not_read_the_raw_values(drs: RatingStudy) -> None:
    statements: list[str] = []

    def record(conn, cursor, statement, params, context, executemany) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(drs.store.engine, "before_cursor_execute", record)
    try:
        item = next_item(drs.store, drs.principals["alice"])
    finally:
        event.remove(drs.store.engine, "before_cursor_execute", record)
    assert item is not None and item.window_presets == NAMES
    mentions = [s for s in statements if "original_raw" in s]
    assert mentions  # the presence test is there ...
    for statement in mentions:  # ... and only as IS NOT NULL, never the bytes
        assert (
            re.sub(r"stimulus\.original_raw IS NOT NULL", "", statement).count("original_raw") == 0
        ), statement


# --- refusals -----------------------------------------------------------------------


def test_unknown_preset_lists_the_known_ones(drs: RatingStudy) -> None:
    item = next_item(drs.store, drs.principals["alice"])
    assert item is not None
    for bad in ("Brain", "lung", 3):
        with pytest.raises(InputError) as info:
            windowed_original(drs.store, drs.principals["alice"], item.assignment_id, bad)  # type: ignore[arg-type]
        assert str(info.value) == (
            f"window preset {bad!r} is not defined; use one of 'Soft tissue', 'Lung', 'Bone'"
        )


def test_another_raters_or_a_missing_assignment_is_refused(drs: RatingStudy) -> None:
    assert next_item(drs.store, drs.principals["bob"]) is not None  # served to bob
    bobs = drs.queue["bob"][0]
    for other in (bobs, 999999):
        with pytest.raises(AccessError) as info:
            windowed_original(drs.store, drs.principals["alice"], other, "Lung")
        assert str(info.value) == (
            f"assignment {other} is not in the queue of 'alice'; answer only items served to you"
        )
    with pytest.raises(InputError, match="assignment id is '1'; pass the served item's id"):
        windowed_original(drs.store, drs.principals["alice"], "1", "Lung")  # type: ignore[arg-type]


def test_an_item_not_yet_served_is_refused(drs: RatingStudy) -> None:
    first = drs.queue["alice"][0]  # has DICOM values but was never served
    with pytest.raises(InputError) as info:
        windowed_original(drs.store, drs.principals["alice"], first, "Lung")
    assert str(info.value) == (
        f"assignment {first} has not been served yet; re-window only items that next_item "
        "has served you"
    )


def test_an_image_without_dicom_values_is_refused(drs: RatingStudy) -> None:
    answer_next(drs, "alice")
    second = next_item(drs.store, drs.principals["alice"])
    assert second is not None
    with pytest.raises(InputError) as info:
        windowed_original(drs.store, drs.principals["alice"], second.assignment_id, "Lung")
    assert str(info.value) == (
        f"the image of assignment {second.assignment_id} has no DICOM values to re-window "
        "(window presets apply to DICOM images only); show its plain image as served"
    )


def test_monitor_revoked_rater_and_closed_study_are_refused(drs: RatingStudy) -> None:
    first = drs.queue["alice"][0]
    assert next_item(drs.store, drs.principals["alice"]) is not None
    with pytest.raises(AccessError) as info:
        windowed_original(drs.store, drs.principals["monica"], first, "Lung")
    assert str(info.value) == (
        "account 'monica' has role 'monitor', which may not re-window images; that needs role rater"
    )
    with drs.store.write() as s:
        lifecycle.advance(s, s.get_one(Study, STUDY), "closed", actor="lead")
    with pytest.raises(LifecycleError, match="cannot rate: study 'inspection_demo' is closed"):
        windowed_original(drs.store, drs.principals["alice"], first, "Lung")
    revoke_rater(drs.store, STUDY, "alice", actor="lead")
    with pytest.raises(AuthError, match="sign-in failed"):
        windowed_original(drs.store, drs.principals["alice"], first, "Lung")


def test_messages_never_unblind(drs: RatingStudy) -> None:
    assert next_item(drs.store, drs.principals["alice"]) is not None
    queue = drs.queue["alice"]
    calls = [
        (queue[0], "Brain"),
        (queue[1], "Lung"),
        (drs.queue["bob"][0], "Lung"),
    ]
    answer_next(drs, "alice")
    assert next_item(drs.store, drs.principals["alice"]) is not None
    calls.append((queue[1], "Lung"))  # served now, a PNG
    with drs.store.session() as s:
        keys = set(s.scalars(select(Case.case_key))) | set(s.scalars(select(Case.source)))
    messages = []
    for assignment_id, preset in calls:
        with pytest.raises(InputError) as info:
            windowed_original(drs.store, drs.principals["alice"], assignment_id, preset)
        messages.append(str(info.value))
    text = "\n".join(messages)
    for secret in drs.secrets | keys:
        assert not re.search(rf"(?<![A-Za-z0-9_]){re.escape(secret)}(?![A-Za-z0-9_])", text), secret
