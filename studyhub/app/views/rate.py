"""The rating queue: one blinded item at a time, its instrument, cue marks and submit.

Cue marks are placed by clicking the image (``streamlit-image-coordinates``),
each click tagged with the tag chosen beside it; the same points can be typed
as numbers (x and y as fractions of the image, from the top-left corner), which
keyboard users and ``AppTest`` use. Zoom crops the image area around a chosen
centre; clicks on a zoomed view land where they point on the whole image.
"""

from __future__ import annotations

import time
from typing import Any

import streamlit as st
from streamlit_image_coordinates import streamlit_image_coordinates

from studyhub.app.context import forget_item, item_state
from studyhub.app.imaging import View, click_to_image, compose_overlay, draw_marks, zoom_view
from studyhub.app.views import done, plain
from studyhub.errors import StudyhubError
from studyhub.protocol.schema import Item
from studyhub.rating import Principal, Progress, ServedItem, resume, submit, windowed_original
from studyhub.rating.answers import CUE_TAGS, MAX_TIME_ON_TASK_MS
from studyhub.rating.outage import store_failed
from studyhub.store.db import Store

__all__ = ["show"]

_TAG_WORDS = {"correct": "correct cue", "misleading": "misleading cue"}
_ZOOMS = [1.0, 1.5, 2.0, 3.0, 4.0]


def show(store: Store, principal: Principal) -> None:
    """Draw the rater's next item, or the done / washout page when none is waiting.

    Parameters
    ----------
    store : Store
        The open store.
    principal : Principal
        The signed-in rater.
    """
    state = resume(store, principal)
    item = state.item
    if item is None:
        done.show(state)
        return
    kept = item_state(item.assignment_id)
    _progress_bar(state.progress, item)
    with st.expander("Instructions"):
        st.markdown(plain(item.instrument.instructions))
    if item.training:
        st.caption("Practice item: it helps you get used to the form and is not analysed.")
    if item.catch_prompt:
        st.warning(plain(item.catch_prompt))
    left, right = st.columns([5, 2])  # the image gets the room; the form stays readable
    with left:
        _stimulus(store, principal, item, kept)
    with right:
        answers = _instrument(item)
        if item.instrument.cue_marking:
            _cue_marks(item, kept["marks"])
        clicked = st.button(
            "Submit and continue", type="primary", key=f"submit:{item.assignment_id}"
        )
    if not clicked:
        return
    elapsed = round((time.monotonic() - kept["shown_at"]) * 1000)
    try:
        submit(
            store,
            principal,
            item.assignment_id,
            answers,
            cue_marks=list(kept["marks"]),
            time_on_task_ms=min(max(elapsed, 0), MAX_TIME_ON_TASK_MS),
            idempotency_key=kept["idempotency_key"],
        )
    except StudyhubError as exc:
        if store_failed(exc):
            raise  # the app's plain "try again" page, not the details
        with right:
            st.error(str(exc))
        return
    forget_item(item.assignment_id)
    st.rerun()


def _progress_bar(prog: Progress, item: ServedItem) -> None:
    fraction = prog.done / prog.total if prog.total else 0.0
    st.progress(
        fraction,
        text=(
            f"Item {item.position} of {item.total} · session {item.session} of "
            f"{prog.sessions} · {prog.done} done"
        ),
    )


def _stimulus(store: Store, principal: Principal, item: ServedItem, kept: dict[str, Any]) -> None:
    aid = item.assignment_id
    original, overlay = item.original_png, item.overlay_png
    c1, c2, c3, c4 = st.columns(4)
    show_overlay = c1.toggle(
        "Show the highlight",
        value=True,
        key=f"overlay:{aid}",
        disabled=original is None,
        help=None if original is not None else "This item has no image without the highlight.",
    )
    opacity = c2.slider(
        "Highlight opacity",
        min_value=0.0,
        max_value=1.0,
        value=float(item.opacity),
        step=0.05,
        key=f"opacity:{aid}",
        disabled=not show_overlay or original is None or overlay is None,
    )
    zoom = c3.select_slider(
        "Zoom", options=_ZOOMS, value=1.0, key=f"zoom:{aid}", format_func=lambda z: f"{z:g}x"
    )
    beside = c4.toggle(
        "Original beside",
        value=False,
        key=f"beside:{aid}",
        disabled=original is None,
        help="Show the image without the highlight next to it, at the same size.",
    )
    original = _windowed(store, principal, item, kept, original)
    view = View(0.0, 0.0, 1.0)
    if zoom > 1.0:
        p1, p2 = st.columns(2)
        cx = p1.slider("Horizontal position", 0.0, 1.0, 0.5, 0.05, key=f"pan_x:{aid}")
        cy = p2.slider("Vertical position", 0.0, 1.0, 0.5, 0.05, key=f"pan_y:{aid}")
        view = View.centred(zoom, cx, cy)
    if not show_overlay and original is not None:
        image, caption = original, "Without the highlight"
    elif (
        original is not None
        and overlay is not None
        and (abs(opacity - item.opacity) > 1e-9 or original is not item.original_png)
    ):
        # The protocol's rendering is shown as stored; another opacity or window is blended here.
        image = compose_overlay(original, overlay, opacity)
        caption = "With the highlight"
        if abs(opacity - item.opacity) > 1e-9:
            caption += f" ({opacity:.0%} opacity)"
    else:
        image, caption = item.image_png, "With the highlight"
    if original is not item.original_png:
        caption += f", window {st.session_state.get(f'window:{aid}')}"
    if not view.full:
        caption += f", zoomed {zoom:g}x"
    shown = zoom_view(image, view)
    if original is None or not beside:
        _main_image(item, shown, caption, view, kept)
    else:
        main_col, side_col = st.columns(2)
        with main_col:
            _main_image(item, shown, caption, view, kept)
        side_col.image(zoom_view(original, view), caption="Original", width="stretch")
    if item.legend:
        st.caption(plain(item.legend))
    if item.cue_text:
        st.markdown(f"**{plain(item.cue_text)}**")
    if item.narrative:
        st.markdown(plain(item.narrative))
    st.caption(f"Item code {item.code}")


def _windowed(
    store: Store,
    principal: Principal,
    item: ServedItem,
    kept: dict[str, Any],
    original: bytes | None,
) -> bytes | None:
    """The plain image in the window preset the rater chose (DICOM items with presets)."""
    if not item.window_presets or original is None:
        return original
    served = "As stored"
    choice = st.selectbox(
        "Window (level/width)",
        [served, *item.window_presets],
        key=f"window:{item.assignment_id}",
        help="Display presets of the study protocol for this image.",
    )
    if choice == served:
        return original
    windows: dict[str, bytes] = kept.setdefault("windows", {})
    if choice not in windows:
        windows[choice] = windowed_original(store, principal, item.assignment_id, choice)
    return windows[choice]


def _main_image(
    item: ServedItem, shown: bytes, caption: str, view: View, kept: dict[str, Any]
) -> None:
    """The stimulus; clickable for cue marks when the protocol asks for them."""
    if not item.instrument.cue_marking:
        st.image(shown, caption=caption, width="stretch")
        return
    aid = item.assignment_id
    marks: list[dict[str, Any]] = kept["marks"]
    picture = draw_marks(shown, marks, view)
    click = streamlit_image_coordinates(
        picture, key=f"click:{aid}", use_column_width="always", cursor="crosshair"
    )
    st.caption(f"{caption} · click the image to mark a cue")
    if not isinstance(click, dict) or click.get("unix_time") == kept.get("last_click"):
        return
    kept["last_click"] = click.get("unix_time")
    point = click_to_image(click, picture.width, picture.height, view)
    if point is None:
        return  # a click on the colour bar or outside the image marks nothing
    tag = st.session_state.get(f"click_tag:{aid}", CUE_TAGS[0])
    marks.append({"x": round(point[0], 4), "y": round(point[1], 4), "tag": tag})
    st.rerun()


def _instrument(item: ServedItem) -> dict[str, Any]:
    answers: dict[str, Any] = {}
    for q in item.instrument.items:
        answers[q.id] = _question(item, q)
    return answers


def _question(item: ServedItem, q: Item) -> Any:
    key = f"{item.assignment_id}:{q.id}"
    label = q.prompt + ("" if q.required else " (optional)")
    if q.type == "likert":
        low, high = q.scale_min or 0, q.scale_max or 0
        anchors = q.anchors
        return st.radio(
            label,
            list(range(low, high + 1)),
            index=None,
            horizontal=True,
            key=key,
            format_func=lambda v: f"{v} – {anchors[v]}" if v in anchors else str(v),
        )
    if q.type == "yes_no":
        return st.radio(
            label,
            ["yes", "no"],
            index=None,
            horizontal=True,
            key=key,
            format_func=lambda v: "Yes" if v == "yes" else "No",
        )
    if q.type == "single_choice":
        return st.radio(label, q.choices, index=None, key=key)
    if q.type == "diagnosis":
        chosen = st.radio(label, list(item.diagnosis_labels), index=None, key=f"{key}:label")
        confidence = st.slider(
            "How confident are you (0 = not at all, 100 = certain)?",
            min_value=0,
            max_value=100,
            value=50,
            key=f"{key}:confidence",
        )
        return None if chosen is None else {"label": chosen, "confidence": confidence}
    return st.text_area(label, key=key, max_chars=10_000)


def _cue_marks(item: ServedItem, marks: list[dict[str, Any]]) -> None:
    aid = item.assignment_id
    st.markdown("**Mark cues** (optional)")
    st.radio(
        "A click on the image marks a",
        list(CUE_TAGS),
        key=f"click_tag:{aid}",
        horizontal=True,
        format_func=lambda t: _TAG_WORDS[t],
    )
    with st.expander("Or enter a point by numbers"):
        st.caption(
            "x from the left edge (0) to the right (1), y from the top (0) to the bottom (1), "
            "of the whole image."
        )
        c1, c2, c3 = st.columns(3)
        x = c1.number_input("x", 0.0, 1.0, 0.5, 0.01, key=f"mark_x:{aid}")
        y = c2.number_input("y", 0.0, 1.0, 0.5, 0.01, key=f"mark_y:{aid}")
        tag = c3.selectbox(
            "Tag", list(CUE_TAGS), key=f"mark_tag:{aid}", format_func=lambda t: _TAG_WORDS[t]
        )
        if st.button("Add mark", key=f"mark_add:{aid}"):
            marks.append({"x": float(x), "y": float(y), "tag": tag})
    if st.button("Remove last mark", key=f"mark_pop:{aid}", disabled=not marks) and marks:
        marks.pop()
    for n, mark in enumerate(marks, 1):
        st.write(f"{n}. x = {mark['x']:.2f}, y = {mark['y']:.2f} — {_TAG_WORDS[mark['tag']]}")
