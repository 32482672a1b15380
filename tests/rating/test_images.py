"""The image cache: what is served equals what is stored; keyed by id and code; bounded."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from studyhub.errors import InputError
from studyhub.rating import next_item
from studyhub.rating.images import CACHE_ENV, ImageCache, StimulusImages, cache_of, images_of
from studyhub.store.models import Assignment, Stimulus
from tests.rating.conftest import RatingStudy, answer_next


def _stored(rs: RatingStudy, assignment_id: int) -> Stimulus:
    with rs.store.session() as s:
        a = s.get_one(Assignment, assignment_id)
        return s.get_one(Stimulus, a.stimulus_id)


def test_served_bytes_are_the_stored_bytes_and_a_reload_reads_the_cache(rs: RatingStudy) -> None:
    p = rs.principals["alice"]
    item = next_item(rs.store, p)
    assert item is not None
    row = _stored(rs, item.assignment_id)
    assert (item.image_png, item.original_png, item.overlay_png) == (
        row.image_png,
        row.original_png,
        row.overlay_png,
    )
    cache = cache_of(rs.store)
    hits = cache.hits
    assert next_item(rs.store, p) == item
    assert cache.hits == hits + 1


def test_the_key_holds_the_code_so_a_reused_id_is_a_miss(rs: RatingStudy) -> None:
    item = next_item(rs.store, rs.principals["alice"])
    assert item is not None
    stim_id = _stored(rs, item.assignment_id).id
    cache = cache_of(rs.store)
    cache.put((stim_id, "OTHERCODE"), StimulusImages(b"not", b"this", b"image"))
    with rs.store.session() as s:
        found = images_of(rs.store, s, stim_id, item.code)
    assert found is not None and found.image_png == item.image_png


def test_the_budget_drops_the_least_recently_used() -> None:
    cache = ImageCache(budget_bytes=10)
    four = StimulusImages(b"aa", b"b", b"c")
    cache.put((1, "a"), four)
    cache.put((2, "b"), four)
    assert cache.get((1, "a")) == four  # 1 is now the most recent
    cache.put((3, "c"), four)  # 12 bytes > 10: drop the least recently used, 2
    assert cache.get((2, "b")) is None and cache.get((1, "a")) == four
    assert cache.used_bytes == 8
    cache.put((4, "d"), StimulusImages(b"x" * 11, None, None))  # larger than the budget
    assert cache.get((4, "d")) is None and cache.used_bytes == 8


def test_a_zero_budget_caches_nothing_and_serving_still_works(
    rs: RatingStudy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CACHE_ENV, "0")
    rs.store.caches.clear()
    answer_next(rs, "alice")
    answer_next(rs, "alice")
    assert cache_of(rs.store).used_bytes == 0 and cache_of(rs.store).hits == 0


def test_a_bad_budget_names_the_variable_the_value_and_the_fix(
    rs: RatingStudy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CACHE_ENV, "lots")
    rs.store.caches.clear()
    with pytest.raises(InputError, match=r"STUDYHUB_IMAGE_CACHE_MB is 'lots'; give .* in MiB"):
        next_item(rs.store, rs.principals["alice"])
    with rs.store.session() as s:
        assert s.scalar(select(Assignment.first_served_at).where(Assignment.id == 1)) is None
