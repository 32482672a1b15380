"""Loading models by entry point; predictions, embeddings and clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from studyhub.errors import InputError
from studyhub.models import embed, load_model, logits, state_dict_sha256

EP = "tests.models.entry_points"
IMAGES = [np.random.default_rng(i).random((4, 4)).astype(np.float32) for i in range(7)]


def test_demo_entry_point_loads_with_a_stable_fingerprint() -> None:
    a = load_model("studyhub.demo.model:load")
    b = load_model("studyhub.demo.model:load")
    assert a.weights_sha256 == b.weights_sha256
    assert len(a.weights_sha256) == 64
    assert not a.module.training


def test_fingerprint_changes_with_any_weight() -> None:
    m = load_model(f"{EP}:tiny")
    before = state_dict_sha256(m.module)
    with torch.no_grad():
        next(m.module.parameters())[0, 0] += 1e-6
    assert state_dict_sha256(m.module) != before


def test_batched_logits_equal_one_by_one() -> None:
    m = load_model(f"{EP}:tiny")
    together = logits(m, IMAGES, n_classes=3, batch_size=4)
    alone = np.concatenate([logits(m, [img], n_classes=3) for img in IMAGES])
    assert together.shape == (7, 3)
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-6)


def test_embedding_falls_back_to_the_last_linear_layers_input() -> None:
    m = load_model(f"{EP}:tiny")
    features = embed(m, IMAGES[:2])
    x = torch.stack([torch.from_numpy(i).unsqueeze(0) for i in IMAGES[:2]])
    with torch.no_grad():
        expected = m.module[2](m.module[1](m.module[0](x)))  # type: ignore[index]
    np.testing.assert_allclose(features, expected.numpy(), rtol=1e-6)


def test_demo_embedding_uses_the_models_embed() -> None:
    from studyhub.demo.synth import generate

    m = load_model("studyhub.demo.model:load")
    images = [s.image for s in generate(3, split="test", seed=0)]
    assert embed(m, images).shape[0] == 3


@pytest.mark.parametrize(
    ("entry", "phrase"),
    [
        ("no.such.module:load", "cannot import 'no.such.module'"),
        (f"{EP}:missing", "has no function 'missing'"),
        (f"{EP}:NOT_CALLABLE", "has no function 'NOT_CALLABLE'"),
        (f"{EP}:not_a_tuple", "returned Linear; it must return a tuple"),
        (f"{EP}:not_a_module", "returned str as its model"),
        (f"{EP}:raises", "raised RuntimeError: CUDA driver not found"),
        ("nocolon", "not of the form package.module:function"),
    ],
)
def test_broken_entry_points_are_named(entry: str, phrase: str) -> None:
    with pytest.raises(InputError) as info:
        load_model(entry)
    assert entry in str(info.value)
    assert phrase in str(info.value)


def test_wrong_output_shape_is_named() -> None:
    m = load_model(f"{EP}:wrong_shape")
    with pytest.raises(
        InputError, match=r"wrong_shape' returned output of shape \(2, 7\).*expected \(2, 3\)"
    ):
        logits(m, IMAGES[:2], n_classes=3)


def test_missing_weights_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match=r"do not exist; fix model\.weights"):
        load_model(f"{EP}:tiny", tmp_path / "nope.pt")


def test_images_of_different_sizes_are_batched_by_shape() -> None:
    m = load_model("studyhub.demo.model:load")
    rng = np.random.default_rng(0)
    images = [
        rng.random(shape).astype(np.float32) for shape in [(64, 64), (40, 50), (64, 64), (40, 50)]
    ]
    together = logits(m, images, n_classes=4, batch_size=8)
    alone = np.concatenate([logits(m, [img], n_classes=4) for img in images])
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-5)


# --- entry points that fail unusually: every one an InputError naming what failed ---------


def _module(tmp_path, monkeypatch, source: str) -> str:  # type: ignore[no-untyped-def]
    """Write a module with ``source`` under a fresh name; return its name."""
    name = f"entry_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


@pytest.mark.parametrize(
    ("source", "phrase"),
    [
        ('raise ValueError("no GPU configured")\n', "raised ValueError: no GPU configured"),
        ("import sys\nsys.exit(3)\n", "raised SystemExit (sys.exit(3))"),
        ("1 / 0\n", "raised ZeroDivisionError: division by zero"),
    ],
)
def test_a_module_failing_at_import_is_named(
    tmp_path, monkeypatch, source: str, phrase: str
) -> None:  # type: ignore[no-untyped-def]
    name = _module(tmp_path, monkeypatch, source + "def load():\n    pass\n")
    with pytest.raises(InputError) as info:
        load_model(f"{name}:load")
    message = str(info.value)
    assert f"model entry point '{name}:load': importing '{name}' {phrase}" in message
    assert "fix the module's top-level code" in message


def test_sys_exit_in_load_is_an_input_error_not_an_exit() -> None:
    with pytest.raises(InputError) as info:
        load_model(f"{EP}:exits")
    assert f"'{EP}:exits' called sys.exit(0) instead of returning" in str(info.value)
    assert "remove the sys.exit call" in str(info.value)


def test_ctrl_c_in_load_still_interrupts() -> None:
    with pytest.raises(KeyboardInterrupt):
        load_model(f"{EP}:interrupted")


def test_preprocess_raising_names_the_case() -> None:
    m = load_model(f"{EP}:preprocess_raises")
    with pytest.raises(InputError) as info:
        logits(m, IMAGES[:2], n_classes=3, keys=["a.png", "b.png"])
    message = str(info.value)
    assert "preprocess raised ValueError: expected an RGB image, got shape (4, 4)" in message
    assert "on case 'a.png'" in message and "fix the entry point's preprocess" in message


def test_forward_raising_names_the_batch() -> None:
    m = load_model(f"{EP}:forward_raises")
    with pytest.raises(InputError) as info:
        logits(m, IMAGES[:2], n_classes=3, keys=["a.png", "b.png"])
    message = str(info.value)
    assert "raised RuntimeError: mat1 and mat2 shapes cannot be multiplied" in message
    assert "2 inputs of shape (1, 4, 4) (case 'a.png', case 'b.png')" in message


@pytest.mark.parametrize(("entry", "value"), [("nan_logits", "nan"), ("inf_logits", "inf")])
def test_non_finite_logits_name_the_case(entry: str, value: str) -> None:
    m = load_model(f"{EP}:{entry}")
    images = [img.copy() for img in IMAGES[:3]]
    images[1][0, 0] = 2.0  # the brightest first pixel: the case the broken model breaks
    keys = ["a.png", "b.png", "c.png"]
    with pytest.raises(InputError) as info:
        logits(m, images, n_classes=3, keys=keys)
    message = str(info.value)
    assert f"'{EP}:{entry}' returned non-finite logits [" in message
    assert value in message.split("logits [", 1)[1].split("]", 1)[0]
    assert "for case 'b.png'" in message and "check its weights for NaN or inf" in message
    without_keys = pytest.raises(InputError, match=r"for image #2 of 3")
    with without_keys:
        logits(m, images, n_classes=3)


def test_non_finite_embeddings_name_the_case() -> None:
    m = load_model(f"{EP}:nan_logits")
    images = [img.copy() for img in IMAGES[:2]]
    images[0][0, 0] = 2.0
    with pytest.raises(InputError) as info:
        embed(m, images, keys=["a.png", "b.png"])
    assert "returned non-finite embeddings [nan" in str(info.value)
    assert "for case 'a.png'" in str(info.value)


def test_keys_must_match_the_images() -> None:
    m = load_model(f"{EP}:tiny")
    with pytest.raises(InputError, match=r"keys holds 1 case keys for 2 images"):
        logits(m, IMAGES[:2], n_classes=3, keys=["a"])
