"""Batched metrics equal the one-case metrics on the demo model (Captum's batched == one-by-one)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from studyhub.errors import InputError
from studyhub.explain.arms import build_arm
from studyhub.explain.metrics import infidelity, perturbation_curve, sensitivity_max
from studyhub.explain.metrics_batch import (
    infidelity_batch,
    perturbation_curves,
    sensitivity_max_batch,
)

#: Batched and one-case values differ only by float32 rounding of differently sized batches:
#: the curves' scores within 1e-5, infidelity and max-sensitivity within 1e-4 relative.
CURVE_ATOL = 1e-5
RTOL = 1e-4


@pytest.fixture(scope="module")
def demo() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    from studyhub.demo.model import load
    from studyhub.demo.synth import generate

    model, preprocess = load()
    cases = generate(5, split="test", seed=3)
    x = torch.stack([preprocess(c.image) for c in cases])
    t = torch.tensor([c.label_index for c in cases])
    return model, x, t


@pytest.mark.parametrize("mode", ["deletion", "insertion"])
def test_curves_of_a_batch_equal_one_case_curves(demo, mode) -> None:  # type: ignore[no-untyped-def]
    model, x, t = demo
    maps = np.random.default_rng(1).normal(size=(x.shape[0], *x.shape[2:]))
    black = torch.full_like(x[0], -1.0)
    batched = perturbation_curves(model, x, maps, t, mode=mode, steps=8, baseline=black)
    kept = x.clone()
    for k, curve in enumerate(batched):
        one = perturbation_curve(
            model, x[k], maps[k], int(t[k]), mode=mode, steps=8, baseline=black
        )
        np.testing.assert_allclose(curve.scores, one.scores, rtol=0, atol=CURVE_ATOL)
        np.testing.assert_array_equal(curve.fractions, one.fractions)
        assert curve.auc == pytest.approx(one.auc, abs=CURVE_ATOL)
    assert torch.equal(x, kept)  # inputs left unchanged
    assert len({round(c.auc, 6) for c in batched}) > 1  # the cases really differ


@pytest.mark.parametrize(
    ("method", "params"),
    [("integrated_gradients", {"n_steps": 8}), ("smoothgrad", {"nt_samples": 4})],
)
def test_perturbation_metrics_of_a_batch_equal_one_case_values(  # type: ignore[no-untyped-def]
    demo, method, params
) -> None:
    """Per-case seeds: a stochastic arm (smoothgrad) gives the same values batched."""
    model, x, t = demo
    arm = build_arm(method, model, params, target_layer=None, preprocess=None)
    seeds = [11, 12, 13, 14, 15]

    inf = infidelity_batch(
        model,
        lambda a, b, s: arm.attribute(a, b, seed=s),
        x,
        t,
        n_perturb_samples=4,
        noise_std=0.1,
        seeds=seeds,
    )
    sens = sensitivity_max_batch(
        lambda a, b, s: arm.attribute(a, b, seed=s),
        x,
        t,
        n_perturb_samples=4,
        radius=0.02,
        seeds=seeds,
    )
    for k, seed in enumerate(seeds):

        def explain(a: torch.Tensor, b: torch.Tensor, seed: int = seed) -> torch.Tensor:
            return arm.attribute(a, b, seed=seed)

        one_inf = infidelity(model, explain, x[k], int(t[k]), n_perturb_samples=4, seed=seed)
        one_sens = sensitivity_max(explain, x[k], int(t[k]), n_perturb_samples=4, seed=seed)
        assert inf[k] == pytest.approx(one_inf, rel=RTOL, abs=1e-7)
        assert sens[k] == pytest.approx(one_sens, rel=RTOL, abs=1e-7)
    assert np.all(np.isfinite(inf)) and np.all(sens >= 0)


def test_batch_input_errors_name_the_fix(demo) -> None:  # type: ignore[no-untyped-def]
    model, x, t = demo
    maps = np.zeros((2, 64, 64))
    with pytest.raises(
        InputError, match=r"attributions have shape \(2, 64, 64\).*one \(H, W\) map"
    ):
        perturbation_curves(model, x, maps, t)
    with pytest.raises(InputError, match="4 targets for 5 inputs"):
        perturbation_curves(model, x, np.zeros((5, 64, 64)), t[:4])
    with pytest.raises(InputError, match="steps is 0; pass an integer >= 1"):
        perturbation_curves(model, x, np.zeros((5, 64, 64)), t, steps=0)
    with pytest.raises(InputError, match="2 seeds for 5 inputs"):
        infidelity_batch(model, lambda a, b, s: a, x, t, n_perturb_samples=2, seeds=[1, 2])
