"""Tests of studyhub/demo/synth.py: determinism, masks, the confounder, the manifest."""

from __future__ import annotations

import csv
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from studyhub.demo import synth
from studyhub.demo.synth import (
    CLASS_NAMES,
    IMAGE_SIZE,
    MANIFEST_COLUMNS,
    MASK_LABELS,
    STAMP_LABEL,
    Sample,
    generate,
    read_dataset,
    with_stamp,
    write_dataset,
)
from studyhub.errors import DataError, InputError


def _same(a: Sample, b: Sample) -> bool:
    return (
        a.case_id == b.case_id
        and a.label == b.label
        and a.metadata == b.metadata
        and np.array_equal(a.image, b.image)
        and np.array_equal(a.mask, b.mask)
    )


@pytest.fixture(scope="module")
def train_cases() -> list[Sample]:
    return generate(800, split="train", seed=0)


@pytest.fixture(scope="module")
def test_cases() -> list[Sample]:
    return generate(800, split="test", seed=0)


def test_same_seed_gives_identical_cases() -> None:
    first = generate(12, split="train", seed=3)
    second = generate(12, split="train", seed=3)
    assert all(_same(a, b) for a, b in zip(first, second, strict=True))


def test_different_seed_or_split_gives_different_images() -> None:
    base = generate(8, split="train", seed=3)
    other_seed = generate(8, split="train", seed=4)
    other_split = generate(8, split="test", seed=3)
    for a, b, c in zip(base, other_seed, other_split, strict=True):
        assert not np.array_equal(a.image, b.image)
        assert not np.array_equal(a.image, c.image)
    assert len({s.case_id for s in base + other_seed + other_split}) == 24


def test_case_depends_only_on_seed_split_index() -> None:
    window = generate(5, split="calibration", seed=1, start=10)
    prefix = generate(15, split="calibration", seed=1)
    assert all(_same(a, b) for a, b in zip(window, prefix[10:], strict=True))
    assert window[0].case_id == "calibration-1-00010"
    assert window[0].index == 10


def test_images_are_quantized_grayscale_in_unit_range(train_cases: list[Sample]) -> None:
    for s in train_cases[:50]:
        assert s.image.shape == (IMAGE_SIZE, IMAGE_SIZE) == (64, 64)
        assert s.image.dtype == np.float32
        assert s.mask.dtype == np.uint8 and s.mask.shape == s.image.shape
        assert s.image.min() >= 0.0 and s.image.max() <= 1.0
        pixels = s.image * 255.0
        np.testing.assert_allclose(pixels, np.round(pixels), atol=1e-4)


def test_classes_are_balanced_in_blocks_of_four(train_cases: list[Sample]) -> None:
    for start in range(0, 40, 4):
        assert sorted(s.label for s in train_cases[start : start + 4]) == sorted(CLASS_NAMES)
    assert set(Counter(s.label for s in train_cases).values()) == {200}


def test_label_map_is_complete(train_cases: list[Sample]) -> None:
    assert sorted(MASK_LABELS) == [0, 1, 2, 3, 4]
    assert MASK_LABELS[0] == "background"
    assert MASK_LABELS[STAMP_LABEL] == "stamp mark"
    for value, name in enumerate(CLASS_NAMES[1:], start=1):
        assert MASK_LABELS[value] == name  # a defect's mask value is its class index
    used = set(np.unique(np.concatenate([s.mask.ravel() for s in train_cases])).tolist())
    assert used == set(MASK_LABELS)


def test_mask_regions_match_label_and_stamp(train_cases: list[Sample]) -> None:
    for s in train_cases[:200]:
        values = set(np.unique(s.mask).tolist()) - {0}
        expected = set() if s.label == "none" else {CLASS_NAMES.index(s.label)}
        if s.metadata["stamp"]:
            expected.add(STAMP_LABEL)
        # A stamp may cover a defect's pixels but never all of them.
        assert values == expected, s.case_id


@pytest.mark.parametrize("split", ["train", "test"])
def test_masks_cover_every_pixel_the_defect_changes(split: str) -> None:
    for s in generate(24, split=split, seed=5):
        if s.label == "none":
            continue
        plain = with_stamp(s, False)
        without = synth._render(s.seed, s.split, s.index, stamp=False, defect=False)
        changed = plain.image != without.image
        value = CLASS_NAMES.index(s.label)
        assert changed.sum() >= 4, s.case_id
        assert np.all(plain.mask[changed] == value), s.case_id
        # ... and the mask is the changed region widened by at most one pixel.
        assert (plain.mask == value).sum() <= 9 * changed.sum()


def test_with_stamp_changes_only_the_stamp_region() -> None:
    for s in generate(12, split="test", seed=2):
        on, off = with_stamp(s, True), with_stamp(s, False)
        assert on.metadata["stamp"] is True and off.metadata["stamp"] is False
        assert on.case_id == off.case_id == s.case_id
        differs = on.image != off.image
        assert differs.any()
        assert np.all(on.mask[differs] == STAMP_LABEL)
        assert np.array_equal(on.mask != STAMP_LABEL, (off.mask == on.mask))
        assert _same(with_stamp(s, bool(s.metadata["stamp"])), s)


def test_stamp_sits_near_a_corner(test_cases: list[Sample]) -> None:
    for s in test_cases[:100]:
        if not s.metadata["stamp"]:
            continue
        rows, cols = np.nonzero(s.mask == STAMP_LABEL)
        near = lambda v: v.max() < 16 or v.min() > IMAGE_SIZE - 17  # noqa: E731
        assert near(rows) and near(cols), s.case_id


def _stamp_rates(cases: list[Sample]) -> tuple[float, float]:
    pit = [s.metadata["stamp"] for s in cases if s.label == "pit"]
    other = [s.metadata["stamp"] for s in cases if s.label != "pit"]
    return float(np.mean(pit)), float(np.mean(other))


def test_confounder_in_train_split(train_cases: list[Sample]) -> None:
    pit, other = _stamp_rates(train_cases)
    # Designed: 90% of pit images, 5% of the others (200 and 600 cases here).
    assert 0.82 <= pit <= 0.97
    assert 0.01 <= other <= 0.10


@pytest.mark.parametrize("split", ["calibration", "test"])
def test_stamp_independent_of_class_in_held_out_splits(split: str) -> None:
    cases = generate(800, split=split, seed=0)
    pit, other = _stamp_rates(cases)
    # Designed: 50% of every class.
    assert abs(pit - other) < 0.12
    assert 0.4 <= np.mean([s.metadata["stamp"] for s in cases]) <= 0.6


def test_metadata_levels_and_dim_images_are_darker(train_cases: list[Sample]) -> None:
    assert {s.metadata["line"] for s in train_cases} == {"A", "B", "C"}
    assert {s.metadata["lighting"] for s in train_cases} == {"bright", "dim"}
    dim = np.mean([s.image.mean() for s in train_cases if s.metadata["lighting"] == "dim"])
    bright = np.mean([s.image.mean() for s in train_cases if s.metadata["lighting"] == "bright"])
    assert dim < bright - 0.15


def test_manifest_round_trips(tmp_path) -> None:
    manifest = write_dataset(tmp_path / "data", {"train": 6, "test": 5}, seed=1)
    assert manifest == tmp_path / "data" / "manifest.csv"
    with manifest.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == MANIFEST_COLUMNS
    assert [r["split"] for r in rows] == ["train"] * 6 + ["test"] * 5
    assert (tmp_path / "data" / rows[0]["image_path"]).is_file()

    frame = pd.read_csv(manifest)
    assert frame["stamp"].dtype == bool
    assert set(frame["label"]) <= set(CLASS_NAMES)

    back = read_dataset(manifest)
    expected = generate(6, split="train", seed=1) + generate(5, split="test", seed=1)
    assert len(back) == len(expected)
    for a, b in zip(back, expected, strict=True):
        assert _same(a, b), a.case_id
        assert (a.split, a.seed, a.index) == (b.split, b.seed, b.index)


def test_write_dataset_same_count_for_every_split(tmp_path) -> None:
    frame = pd.read_csv(write_dataset(tmp_path, 2, seed=0))
    assert list(frame["split"]) == ["train", "train", "calibration", "calibration", "test", "test"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n": 0, "split": "train"}, "n is 0; pass an integer >= 1"),
        ({"n": 3, "split": "val"}, "split is 'val'; use one of train, calibration, test"),
        ({"n": 3, "split": "test", "seed": -1}, "seed is -1; pass a non-negative integer"),
        ({"n": 3, "split": "test", "start": -2}, "start is -2; pass an integer >= 0"),
    ],
)
def test_generate_rejects_bad_input(kwargs: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        generate(**kwargs)


def test_write_dataset_rejects_bad_counts(tmp_path) -> None:
    with pytest.raises(InputError, match=r"unknown split\(s\) \['val'\]; use keys from train"):
        write_dataset(tmp_path, {"val": 3})
    with pytest.raises(InputError, match=r"n_per_split\['test'\] is 0"):
        write_dataset(tmp_path, {"test": 0})


def test_read_dataset_names_missing_columns(tmp_path) -> None:
    bad = tmp_path / "manifest.csv"
    bad.write_text("image_path,label\nx.png,pit\n")
    with pytest.raises(DataError, match=r"lacks column\(s\) \['mask_path'"):
        read_dataset(bad)
    with pytest.raises(DataError, match="does not exist"):
        read_dataset(tmp_path / "nope.csv")


def test_with_stamp_rejects_non_samples() -> None:
    with pytest.raises(InputError, match="sample is a str; pass a Sample"):
        with_stamp("case-1", True)  # type: ignore[arg-type]
