"""Tests of studyhub/explain/uncertainty.py on the demo model and images."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from studyhub.demo.model import load
from studyhub.demo.synth import CLASS_NAMES, generate
from studyhub.errors import InputError
from studyhub.explain.arms import build_arm
from studyhub.explain.uncertainty import attribution_uncertainty, normalise_maps


@pytest.fixture(scope="module")
def demo() -> tuple[Any, Any, torch.Tensor, torch.Tensor]:
    torch.set_num_threads(2)
    model, preprocess = load()
    cases = generate(3, split="test", seed=0)
    x = torch.stack([preprocess(c.image) for c in cases])
    t = torch.tensor([CLASS_NAMES.index(c.label) for c in cases])
    return model, preprocess, x, t


def test_normalise_maps_by_hand() -> None:
    # |[-2, 1; 0, 4]| over 2 channels [[1,1],[0,0]] -> magnitudes [3, 2; 0, 4];
    # the 100th percentile is 4, so the map is [0.75, 0.5; 0, 1].
    maps = torch.tensor([[[[-2.0, 1.0], [0.0, 4.0]], [[1.0, 1.0], [0.0, 0.0]]]])
    expected = torch.tensor([[[0.75, 0.5], [0.0, 1.0]]], dtype=torch.float64)
    torch.testing.assert_close(normalise_maps(maps, percentile=100.0), expected)
    assert not normalise_maps(torch.zeros(1, 1, 2, 2)).any()


def test_uncertainty_contract(demo: Any) -> None:
    model, _, x, t = demo
    arm = build_arm("saliency", model, {})
    before = x.clone()
    u = attribution_uncertainty(arm, x, t, n_samples=4, seed=1)
    assert torch.equal(x, before)
    assert u.shape == (3, 64, 64) and u.dtype == torch.float32
    assert float(u.min()) >= 0.0 and float(u.max()) <= 0.5
    assert float(u.mean()) > 0.0
    assert torch.equal(u, attribution_uncertainty(arm, x, t, n_samples=4, seed=1))
    assert not torch.equal(u, attribution_uncertainty(arm, x, t, n_samples=4, seed=2))
    single = torch.cat(
        [
            attribution_uncertainty(arm, x[i : i + 1], t[i : i + 1], n_samples=4, seed=1)
            for i in range(3)
        ]
    )
    torch.testing.assert_close(single, u, rtol=1e-4, atol=1e-5)


def test_no_noise_no_uncertainty(demo: Any) -> None:
    model, _, x, t = demo
    arm = build_arm("integrated_gradients", model, {"n_steps": 8})
    u = attribution_uncertainty(arm, x[:1], t[:1], n_samples=3, seed=0, noise_level=0.0)
    assert float(u.max()) < 1e-5


def test_more_noise_more_uncertainty(demo: Any) -> None:
    model, _, x, t = demo
    arm = build_arm("gradcam", model, {})
    low = attribution_uncertainty(arm, x, t, n_samples=6, seed=0, noise_level=0.01)
    high = attribution_uncertainty(arm, x, t, n_samples=6, seed=0, noise_level=0.2)
    assert float(high.mean()) > float(low.mean())


def test_stochastic_arm_and_bare_model(demo: Any) -> None:
    model, _, x, t = demo
    smooth = build_arm("smoothgrad", model, {"nt_samples": 4})
    u = attribution_uncertainty(smooth, x[:2], t[:2], n_samples=3, seed=[5, 6])
    assert u.shape == (2, 64, 64)
    again = attribution_uncertainty(smooth, x[1:2], t[1:2], n_samples=3, seed=[6])
    torch.testing.assert_close(u[1:2], again, rtol=1e-4, atol=1e-5)
    bare = attribution_uncertainty(model, x[:1], t[:1], n_samples=2, seed=0)
    assert bare.shape == (1, 64, 64)


def test_errors_are_clear(demo: Any) -> None:
    model, _, x, t = demo
    with pytest.raises(InputError, match="arm 'none' makes no map"):
        attribution_uncertainty(build_arm("none", model, {}), x, t, n_samples=4, seed=0)
    with pytest.raises(InputError, match="n_samples is 1; use an integer >= 2"):
        attribution_uncertainty(model, x, t, n_samples=1, seed=0)
    with pytest.raises(InputError, match=r"noise_level is -0\.1; use a number >= 0"):
        attribution_uncertainty(model, x, t, n_samples=2, seed=0, noise_level=-0.1)
    with pytest.raises(InputError, match="arm is a str"):
        attribution_uncertainty("saliency", x, t, n_samples=2, seed=0)  # type: ignore[arg-type]
