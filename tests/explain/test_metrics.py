"""Tests of studyhub.explain.metrics against values computed by hand.

Each expected value is derived in the comment beside it, on 2×2 or 4×4 arrays
and a linear model f(x) = sum(w * x) whose curves can be followed on paper.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from studyhub.errors import InputError
from studyhub.explain.metrics import (
    deletion_auc,
    infidelity,
    insertion_auc,
    perturbation_curve,
    pointing_game,
    randomization_rank_correlation,
    relevance_mass,
    sensitivity_max,
    top_k_iou,
)

X = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])  # one channel, 2×2


def linear(weights: torch.Tensor):  # type: ignore[no-untyped-def]
    """f(x) = [sum(w * x), 0] for a batch (N, 1, 2, 2): class 0 has logit sum(w * x)."""

    def forward(x: torch.Tensor) -> torch.Tensor:
        logit = (x * weights).flatten(1).sum(1, keepdim=True)
        return torch.cat([logit, torch.zeros_like(logit)], dim=1)

    return forward


ONES = linear(torch.ones(1, 2, 2))


# --- deletion / insertion ------------------------------------------------------------


def test_deletion_curve_by_hand() -> None:
    # Order by attribution = x: pixels 4, 3, 2, 1. steps=4 removes one pixel per step
    # (baseline 0): f = 10, 6, 3, 1, 0. Trapezoid over 1/4 steps:
    # (10 + 6 + 3 + 1 + 0 - 10/2 - 0/2) / 4 = 15 / 4 = 3.75.
    curve = perturbation_curve(ONES, X, X[0].numpy(), 0, steps=4, softmax=False)
    np.testing.assert_allclose(curve.scores, [10, 6, 3, 1, 0])
    np.testing.assert_allclose(curve.fractions, [0, 0.25, 0.5, 0.75, 1.0])
    assert curve.auc == pytest.approx(3.75)
    assert deletion_auc(ONES, X, X[0].numpy(), 0, steps=4, softmax=False) == pytest.approx(3.75)


def test_insertion_curve_by_hand() -> None:
    # Insert 4, 3, 2, 1 onto a zero image: 0, 4, 7, 9, 10 -> (30 - 0 - 5) / 4 = 6.25.
    curve = perturbation_curve(ONES, X, X[0].numpy(), 0, mode="insertion", steps=4, softmax=False)
    np.testing.assert_allclose(curve.scores, [0, 4, 7, 9, 10])
    assert insertion_auc(ONES, X, X[0].numpy(), 0, steps=4, softmax=False) == pytest.approx(6.25)


def test_reversed_order_and_baseline_and_softmax() -> None:
    # Order by -x: delete 1, 2, 3, 4 -> 10, 9, 7, 4, 0 -> (30 - 5 - 0) / 4 = 6.25.
    assert deletion_auc(ONES, X, -X[0].numpy(), 0, steps=4, softmax=False) == pytest.approx(6.25)
    # Baseline 1: deleting 4, 3, 2, 1 -> 10, 7, 5, 4, 4 -> (30 - 5 - 2) / 4 = 5.75.
    assert deletion_auc(
        ONES, X, X[0].numpy(), 0, steps=4, baseline=1.0, softmax=False
    ) == pytest.approx(5.75)
    # Softmax over logits [f, 0] is sigmoid(f): steps=1 gives (sigmoid(10) + sigmoid(0)) / 2.
    expected = (1 / (1 + math.exp(-10)) + 0.5) / 2
    assert deletion_auc(ONES, X, X[0].numpy(), 0, steps=1) == pytest.approx(expected)
    # Two steps on four pixels remove round(2) = 2 pixels at the middle point: f = 10, 3, 0.
    curve = perturbation_curve(ONES, X, X[0].numpy(), 0, steps=2, softmax=False)
    np.testing.assert_allclose(curve.scores, [10, 3, 0])


def test_batched_equals_one_by_one_on_the_demo_model() -> None:
    from studyhub.demo.model import load
    from studyhub.demo.synth import generate

    model, preprocess = load()
    case = generate(1, split="test", seed=0)[0]
    x = preprocess(case.image)
    attr = np.random.default_rng(0).normal(size=(64, 64))
    one = perturbation_curve(model, x, attr, case.label_index, steps=8, batch_size=1)
    all_ = perturbation_curve(model, x, attr, case.label_index, steps=8, batch_size=64)
    np.testing.assert_allclose(one.scores, all_.scores, rtol=1e-5, atol=1e-6)
    assert 0.0 <= all_.auc <= 1.0
    assert torch.equal(x, preprocess(case.image))  # inputs left unchanged


def test_curve_input_errors() -> None:
    with pytest.raises(InputError, match=r"attribution has shape \(3, 3\) but the image"):
        deletion_auc(ONES, X, np.zeros((3, 3)), 0)
    with pytest.raises(InputError, match="NaN"):
        deletion_auc(ONES, X, np.array([[np.nan, 0], [0, 0]]), 0)
    with pytest.raises(InputError, match="steps is 0"):
        deletion_auc(ONES, X, X[0].numpy(), 0, steps=0)
    with pytest.raises(InputError, match="inputs has shape"):
        deletion_auc(ONES, torch.zeros(2, 1, 2, 2), X[0].numpy(), 0)


# --- infidelity / max-sensitivity (Captum) -----------------------------------------------

W = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
WEIGHTED = linear(W)


def test_infidelity_by_hand() -> None:
    # Perturbation I = ones. f(x) - f(x - I) = sum(w) = 10.
    ones = lambda x: torch.ones_like(x)  # noqa: E731
    # The gradient explains a linear model exactly: I·w - 10 = 0.
    grad = lambda x, t: W.expand_as(x)  # noqa: E731
    assert infidelity(WEIGHTED, grad, X, 0, perturb_fn=ones) == pytest.approx(0.0)
    # Twice the gradient: (I·2w - 10)^2 = (20 - 10)^2 = 100.
    double = lambda x, t: 2 * W.expand_as(x)  # noqa: E731
    assert infidelity(WEIGHTED, double, X, 0, perturb_fn=ones) == pytest.approx(100.0)
    # Random Gaussian perturbations keep the exact explanation at 0 and are seeded.
    assert infidelity(WEIGHTED, grad, X, 0) == pytest.approx(0.0, abs=1e-8)
    assert infidelity(WEIGHTED, double, X, 0, seed=3) == infidelity(WEIGHTED, double, X, 0, seed=3)


def test_sensitivity_max_by_hand() -> None:
    # A constant explanation does not move: 0.
    constant = lambda x, t: W.expand_as(x)  # noqa: E731
    assert sensitivity_max(constant, X, 0) == pytest.approx(0.0)
    # The identity explanation under delta = 0.5 everywhere:
    # ||delta|| / ||x|| = sqrt(4 * 0.25) / sqrt(1 + 4 + 9 + 16) = 1 / sqrt(30).
    identity = lambda x, t: x  # noqa: E731
    half = lambda x: torch.full_like(x, 0.5)  # noqa: E731
    value = sensitivity_max(identity, X, 0, perturb_fn=half)
    assert value == pytest.approx(1 / math.sqrt(30), rel=1e-6)
    # Uniform noise in [-r, r]: at most r * sqrt(4) / sqrt(30); seeded, so repeatable.
    noisy = sensitivity_max(identity, X, 0, radius=0.1, seed=1)
    assert 0 < noisy <= 0.2 / math.sqrt(30) + 1e-9
    assert noisy == sensitivity_max(identity, X, 0, radius=0.1, seed=1)


def test_explain_fn_receives_batched_targets() -> None:
    seen: list[torch.Tensor] = []

    def explain(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        seen.append(target)
        return x

    sensitivity_max(explain, X, 1, n_perturb_samples=3)
    assert all(int(t.reshape(-1)[0]) == 1 for t in seen)
    assert seen[-1].numel() == 3  # one target per perturbed copy


# --- masks ---------------------------------------------------------------------------

# 4×4 map and mask used below (mask: the 2×2 block at rows 1-2, columns 1-2).
A = np.array(
    [
        [1.0, 0.0, 0.0, 0.0],
        [0.0, 2.0, -1.0, 0.0],
        [0.0, 3.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 4.0],
    ]
)
M = np.zeros((4, 4), dtype=bool)
M[1:3, 1:3] = True


def test_pointing_game_by_hand() -> None:
    # Maximum 4 at (3, 3); nearest mask pixel (2, 2) is sqrt(2) ≈ 1.41 away.
    assert pointing_game(A, M, tolerance=1.5) is True
    assert pointing_game(A, M, tolerance=1.0) is False
    assert pointing_game(A, M, tolerance=0.0) is False
    # Move the maximum onto (2, 1), inside the mask: a hit with no tolerance.
    b = A.copy()
    b[2, 1] = 9.0
    assert pointing_game(b, M, tolerance=0.0) is True
    # Ties: one maximum inside and one outside is not a hit.
    b[0, 0] = 9.0
    assert pointing_game(b, M, tolerance=0.0) is False


def test_relevance_mass_by_hand() -> None:
    # Positive mass 1 + 2 + 3 + 4 = 10; inside the mask 2 + 3 (the -1 does not count) = 5.
    assert relevance_mass(A, M) == pytest.approx(0.5)
    # Integer labels with labels=...: the same region.
    labelled = M.astype(np.uint8) * 3
    assert relevance_mass(A, labelled, labels=[3]) == pytest.approx(0.5)
    assert math.isnan(relevance_mass(-np.abs(A), M))


def test_top_k_iou_by_hand() -> None:
    # Top 25% of 16 pixels = 4: values 4, 3, 2, 1 at (3,3), (2,1), (1,1), (0,0).
    # In the mask: (2,1) and (1,1) -> 2; union 4 + 4 - 2 = 6; IoU = 1/3.
    assert top_k_iou(A, M, percent=25) == pytest.approx(1 / 3)
    # Top 12.5% = 2 pixels (3,3), (2,1): 1 in the mask, union 5 -> 0.2.
    assert top_k_iou(A, M, percent=12.5) == pytest.approx(0.2)
    # |a|: top 6.25% = the 4 at (3,3): no overlap.
    assert top_k_iou(A, M, percent=6.25, sign="absolute") == 0.0


def test_mask_errors_name_the_fix() -> None:
    with pytest.raises(InputError, match="target region is empty"):
        relevance_mass(A, np.zeros((4, 4), dtype=bool))
    with pytest.raises(InputError, match=r"integer labels with labels=\[...\]"):
        pointing_game(A, M.astype(np.uint8))
    with pytest.raises(InputError, match=r"mask has shape \(3, 3\)"):
        top_k_iou(A, np.ones((3, 3), dtype=bool))


# --- randomization -------------------------------------------------------------------


def test_randomization_rank_correlation_by_hand() -> None:
    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    # Ranks 1 2 3 4 vs 1 2 4 3: sum d^2 = 2 -> 1 - 6*2 / (4 * 15) = 0.8.
    assert randomization_rank_correlation(a, np.array([[1.0, 2.0], [4.0, 3.0]])) == (
        pytest.approx(0.8)
    )
    # Signed -4 1 2 3 ranks 1 2 3 4 like b: 1.0; absolute 4 1 2 3 ranks 4 1 2 3:
    # sum d^2 = 9 + 1 + 1 + 1 = 12 -> 1 - 72 / 60 = -0.2.
    signed = np.array([[-4.0, 1.0], [2.0, 3.0]])
    assert randomization_rank_correlation(signed, a, absolute=False) == pytest.approx(1.0)
    assert randomization_rank_correlation(signed, a) == pytest.approx(-0.2)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 8)), rng.normal(size=(8, 8))
    expected = stats.spearmanr(np.abs(x).ravel(), np.abs(y).ravel()).statistic
    assert randomization_rank_correlation(x, y) == pytest.approx(expected)
    assert math.isnan(randomization_rank_correlation(np.ones((2, 2)), a))
    with pytest.raises(InputError, match="randomized attribution has shape"):
        randomization_rank_correlation(a, np.ones((3, 3)))


def test_captum_metrics_run_on_the_demo_model_with_saliency() -> None:
    from captum.attr import Saliency

    from studyhub.demo.model import load
    from studyhub.demo.synth import generate

    model, preprocess = load()
    case = generate(1, split="test", seed=0)[0]
    x = preprocess(case.image)
    saliency = Saliency(model)

    def explain(inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return saliency.attribute(inputs.clone().requires_grad_(True), target=target, abs=False)

    inf = infidelity(model, explain, x, case.label_index, n_perturb_samples=4)
    sens = sensitivity_max(explain, x, case.label_index, n_perturb_samples=4)
    assert math.isfinite(inf) and inf >= 0
    assert math.isfinite(sens) and sens >= 0
    assert sens == sensitivity_max(explain, x, case.label_index, n_perturb_samples=4)
