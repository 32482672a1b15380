"""Window/level presets: the plain image of a DICOM item, re-windowed for the rater.

The plain image a rater sees (``ServedItem.original_png``) is an 8-bit PNG made
with the file's own display window, which cannot be re-windowed. For DICOM cases
``studyhub explain`` also stores the modality values (``Stimulus.original_raw``),
and :func:`windowed_original` renders them again with one of the protocol's
``rendering.window_presets`` (e.g. "Lung", W1500/L-600): the linear VOI function
of :func:`~studyhub.cases.dicom.apply_window`, inverted for ``MONOCHROME1``
images as :func:`~studyhub.cases.dicom.to_unit_range` does, then drawn on the
same canvas as :func:`~studyhub.explain.render.render_original` (same size,
nearest-neighbour resampling, PNG chunks IHDR, IDAT, IEND only), so the overlay
layer still lines up with it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import bindparam, select

from studyhub.cases.dicom import apply_window, modality_from_bytes
from studyhub.errors import InputError, StudyhubError
from studyhub.protocol.schema import Protocol, WindowPreset
from studyhub.rating._common import caller, own_assignment, require_role
from studyhub.rating.accounts import Principal
from studyhub.rating.stamps import pending_stamp
from studyhub.store import lifecycle
from studyhub.store.db import Store
from studyhub.store.models import Case, Stimulus

__all__ = ["window_presets_of", "windowed_original"]

_RAW = (
    select(Stimulus.original_raw, Case.meta)
    .join(Case, Case.id == Stimulus.case_id)
    .where(Stimulus.id == bindparam("stimulus_id"))
)


def window_presets_of(protocol: Protocol, has_raw: bool) -> tuple[str, ...]:
    """The names of the window presets a front end offers for one stimulus.

    Parameters
    ----------
    protocol : Protocol
        The registered protocol (its ``rendering.window_presets``).
    has_raw : bool
        Whether the stimulus has stored DICOM modality values.

    Returns
    -------
    tuple of str
        The preset names in protocol order; empty when the stimulus has no
        modality values or the protocol no presets.
    """
    if not has_raw:
        return ()
    return tuple(p.name for p in protocol.rendering.window_presets)


def _preset(protocol: Protocol, name: Any) -> WindowPreset:
    presets = protocol.rendering.window_presets
    found = next((p for p in presets if isinstance(name, str) and p.name == name), None)
    if found is not None:
        return found
    if not presets:
        raise InputError(
            f"window preset {name!r} is not defined: this study's protocol has no window "
            "presets (rendering.window_presets); show the plain image as served"
        )
    known = ", ".join(repr(p.name) for p in presets)
    raise InputError(f"window preset {name!r} is not defined; use one of {known}")


def windowed_original(store: Store, principal: Principal, assignment_id: int, preset: str) -> bytes:
    """The plain image of one of the rater's served items, shown with a window preset.

    Parameters
    ----------
    store : Store
        The open store.
    principal : Principal
        The signed-in rater.
    assignment_id : int
        ``ServedItem.assignment_id`` of an item already served to this rater.
    preset : str
        One of ``ServedItem.window_presets``.

    Returns
    -------
    bytes
        RGB PNG of the protocol's canvas size (the image area re-windowed, the
        panel blank, as ``ServedItem.original_png``), with chunks IHDR, IDAT...,
        IEND only.

    Raises
    ------
    InputError
        For an unknown preset name (the message lists the known ones), an item
        not served yet, or an image without DICOM values.
    AccessError
        For an assignment outside the rater's queue, or a monitor or admin.
    AuthError
        When the account was revoked.
    LifecycleError
        When the study is not in ``rating``.
    """
    with store.session() as s:
        who, protocol = caller(s, principal)
        require_role(who, "rater", doing="re-window images")
        lifecycle.require(who, "rate")
        a = own_assignment(s, who, assignment_id)
        if a.first_served_at is None and pending_stamp(store, a.id) is None:
            raise InputError(
                f"assignment {a.id} has not been served yet; re-window only items that "
                "next_item has served you"
            )
        window = _preset(protocol, preset)
        row = s.execute(_RAW, {"stimulus_id": a.stimulus_id}).first()
    if row is None or row.original_raw is None:
        raise InputError(
            f"the image of assignment {a.id} has no DICOM values to re-window (window presets "
            "apply to DICOM images only); show its plain image as served"
        )
    try:
        values = modality_from_bytes(row.original_raw)
    except ValueError as exc:
        raise StudyhubError(
            f"the stored DICOM values of assignment {a.id} cannot be read ({exc}); show the "
            "plain image as served and tell the study lead that the store is damaged"
        ) from exc
    unit = apply_window(values, window.center, window.width)
    meta = row.meta or {}
    if meta.get("photometric_interpretation") == "MONOCHROME1":
        unit = 1.0 - unit
    # Imported here: the renderer loads scipy and matplotlib, which serving does not need.
    from studyhub.explain.render import render_original

    return render_original(unit.astype(np.float32), protocol.rendering)
