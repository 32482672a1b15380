"""The stimulus images served to raters, kept in memory once read.

A stimulus's images never change once the study is rating (they are rendered
while enrolling, and the lifecycle has no way back), while the app redraws an
item on every click — an opacity change, a cue mark — and several raters read
the same stimulus. So the bytes are read from the store once and kept in a
least-recently-used cache with a byte budget, one per open store. Entries are
keyed by the stimulus id *and* its opaque code, so a cache can never hand one
database's image to another that reuses the id.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from studyhub.errors import InputError
from studyhub.store.db import Store
from studyhub.store.models import Stimulus

__all__ = ["CACHE_ENV", "DEFAULT_BUDGET_MB", "ImageCache", "StimulusImages", "images_of"]

#: Environment variable with the cache's budget in MiB (0 switches the cache off).
CACHE_ENV: Final = "STUDYHUB_IMAGE_CACHE_MB"
#: Budget when the variable is not set: about 400 stimuli of three 448 x 448 PNGs.
DEFAULT_BUDGET_MB: Final = 256

_BLOBS = select(Stimulus.image_png, Stimulus.original_png, Stimulus.overlay_png).where(
    Stimulus.id == bindparam("stimulus_id")
)
_KEY = "rating.images"
_create = threading.Lock()


@dataclass(frozen=True)
class StimulusImages:
    """The three images of one stimulus (the last two may be None)."""

    image_png: bytes | None
    original_png: bytes | None
    overlay_png: bytes | None

    @property
    def size(self) -> int:
        return sum(len(b) for b in (self.image_png, self.original_png, self.overlay_png) if b)


class ImageCache:
    """A thread-safe least-recently-used map of stimulus images with a byte budget.

    Parameters
    ----------
    budget_bytes : int
        The most bytes kept; 0 keeps nothing.
    """

    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self.used_bytes = 0
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[tuple[int, str], StimulusImages] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[int, str]) -> StimulusImages | None:
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return found

    def put(self, key: tuple[int, str], images: StimulusImages) -> None:
        size = images.size
        if size > self.budget_bytes:
            return
        with self._lock:
            if key in self._entries:
                return
            self._entries[key] = images
            self.used_bytes += size
            while self.used_bytes > self.budget_bytes:
                _old, dropped = self._entries.popitem(last=False)
                self.used_bytes -= dropped.size


def _budget() -> int:
    raw = os.environ.get(CACHE_ENV, "").strip()
    if not raw:
        return DEFAULT_BUDGET_MB * 2**20
    try:
        mb = float(raw)
    except ValueError:
        mb = -1.0
    if mb < 0:
        raise InputError(
            f"{CACHE_ENV} is {raw!r}; give the image cache's size in MiB as a number "
            f"(e.g. {DEFAULT_BUDGET_MB}), or 0 to switch it off"
        )
    return int(mb * 2**20)


def cache_of(store: Store) -> ImageCache:
    """The image cache of an open store (created on first use)."""
    with _create:
        cache = store.caches.get(_KEY)
        if not isinstance(cache, ImageCache):
            cache = ImageCache(_budget())
            store.caches[_KEY] = cache
        return cache


def images_of(store: Store, s: Session, stimulus_id: int, code: str) -> StimulusImages | None:
    """The stimulus's images, from the cache or read with ``s`` (None: no such stimulus)."""
    cache = cache_of(store)
    key = (stimulus_id, code)
    found = cache.get(key)
    if found is not None:
        return found
    row = s.execute(_BLOBS, {"stimulus_id": stimulus_id}).first()
    if row is None:
        return None
    images = StimulusImages(row.image_png, row.original_png, row.overlay_png)
    if images.image_png is not None:
        cache.put(key, images)
    return images
