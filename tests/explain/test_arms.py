"""Tests of studyhub/explain/arms: the arm contract on the real demo model and images.

Invariances where no reference exists (as Captum tests itself): completeness of
Integrated Gradients, batched equals one-by-one, inputs left unchanged, seeded
reproducibility; hand-computed values where one does (saliency of a linear
model, Sobel of a tiny image); the model-randomisation sanity check of
Adebayo et al. (2018).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from torch import nn

from studyhub.demo.model import LAST_CONV, load
from studyhub.demo.synth import CLASS_NAMES, generate
from studyhub.errors import InputError
from studyhub.explain.arms import ARMS, build_arm
from studyhub.protocol.schema import CONTROL_METHODS, EXPLANATION_METHODS

# Small settings so the whole file runs in about a minute on two cores.
FAST: dict[str, dict[str, Any]] = {
    "integrated_gradients": {"n_steps": 16},
    "saliency": {},
    "smoothgrad": {"nt_samples": 6},
    "gradient_shap": {"n_samples": 6},
    "deeplift": {},
    "occlusion": {"window": 16, "stride": 16},
    "gradcam": {},
    "guided_gradcam": {},
    "region_shap": {"n_segments": 12, "n_samples": 24},
    "random": {},
    "sobel": {},
    "randomized_model": {"n_steps": 8},
    "none": {},
}


@pytest.fixture(scope="module")
def demo() -> tuple[nn.Module, Any, torch.Tensor, torch.Tensor]:
    torch.set_num_threads(2)
    model, preprocess = load()
    cases = generate(4, split="test", seed=0)
    x = torch.stack([preprocess(c.image) for c in cases])
    t = torch.tensor([CLASS_NAMES.index(c.label) for c in cases])
    return model, preprocess, x, t


def _arm(demo: Any, method: str, **extra: Any) -> Any:
    model, preprocess, _, _ = demo
    params = {**FAST[method], **extra}
    return build_arm(method, model, params, target_layer=LAST_CONV, preprocess=preprocess)


def test_registry_covers_the_protocol_methods() -> None:
    assert set(ARMS) == set(EXPLANATION_METHODS) | set(CONTROL_METHODS)


@pytest.mark.parametrize("method", list(FAST))
def test_arm_contract(demo: Any, method: str) -> None:
    """Shape, dtype, inputs unchanged, batched == one-by-one, reproducibility, seeds."""
    _, _, x, t = demo
    x, t = x[:3], t[:3]
    arm = _arm(demo, method)
    before = x.clone()
    out = arm.attribute(x, t, seed=7)
    assert torch.equal(x, before), "attribute modified its inputs"
    assert out.shape == x.shape and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    for name, value in FAST[method].items():
        assert arm.params[name] == value

    # Same inputs, same seed: bit for bit (deterministic arms ignore the seed).
    again = arm.attribute(x, t, seed=7)
    assert torch.equal(out, again)

    # Batched equals one-by-one (per-item seeds make stochastic arms batch-invariant).
    single = torch.cat([arm.attribute(x[i : i + 1], t[i : i + 1], seed=7) for i in range(3)])
    scale = float(out.abs().max()) or 1.0
    torch.testing.assert_close(single, out, rtol=1e-4, atol=1e-5 * scale)

    # A sequence of per-item seeds equal to the int gives the same result.
    assert torch.equal(arm.attribute(x, t, seed=[7, 7, 7]), out)

    other = arm.attribute(x, t, seed=8)
    if arm.deterministic:
        assert torch.equal(other, out)
    else:
        assert not torch.equal(other, out)
    if not arm.produces_map:
        assert method == "none" and not out.any()


def test_stochastic_arms_leave_global_rng_alone(demo: Any) -> None:
    _, _, x, t = demo
    arms = [_arm(demo, m) for m in ("smoothgrad", "gradient_shap", "region_shap", "random")]
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = [a.attribute(x[:2], t[:2], seed=3) for a in arms]
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(999)  # other global state, same maps
    second = [a.attribute(x[:2], t[:2], seed=3) for a in arms]
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a, b)


def test_random_control_differs_between_cases(demo: Any) -> None:
    _, _, x, t = demo
    maps = _arm(demo, "random").attribute(x[:2], t[:2], seed=0)
    assert float(maps.min()) == 0.0 and float(maps.max()) == 1.0
    assert not torch.equal(maps[0], maps[1])


def test_integrated_gradients_completeness(demo: Any) -> None:
    """sum(attr) = f(x) - f(baseline) up to quadrature error (Sundararajan et al. 2017, Prop. 1).

    Stated tolerance: |delta| < 0.15 logits at 32 steps and < 0.03 at 128 steps
    (measured on these cases: at most 0.11 and 0.015; logit gaps are 1 to 15).
    """
    model, _, x, t = demo
    for n_steps, tolerance in ((32, 0.15), (128, 0.03)):
        arm = _arm(demo, "integrated_gradients", n_steps=n_steps)
        attr = arm.attribute(x, t)
        with torch.no_grad():
            f_x = model(x).gather(1, t[:, None])[:, 0]
            f_b = model(arm.baselines(x)).gather(1, t[:, None])[:, 0]
        delta = arm.convergence_delta(x, t, attr)
        assert (delta.abs() < tolerance).all(), (n_steps, delta)
        torch.testing.assert_close(
            attr.sum(dim=(1, 2, 3)) - (f_x - f_b), delta, atol=1e-4, rtol=1e-4
        )
    assert arm.params["black_value"] == pytest.approx(-2.5)  # black pixel through preprocess


def test_deeplift_is_complete_without_max_pooling() -> None:
    """DeepLift's summation-to-delta (Shrikumar et al. 2017, eq. 1) on a conv-BN-ReLU net.

    (Captum's max-pooling rule does not sum to delta, so the demo model, which
    max-pools, is not used here; see DeepLiftArm's docstring.)
    """
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 3),
    ).eval()
    x, t = torch.randn(3, 1, 8, 8), torch.tensor([0, 1, 2])
    arm = build_arm("deeplift", model, {"baseline": "mean"})
    attr = arm.attribute(x, t)
    with torch.no_grad():
        gap = (
            model(x).gather(1, t[:, None])[:, 0]
            - model(arm.baselines(x)).gather(1, t[:, None])[:, 0]
        )
    torch.testing.assert_close(attr.sum(dim=(1, 2, 3)), gap, atol=1e-4, rtol=1e-4)


def test_randomized_model_decorrelates_and_spares_the_original(demo: Any) -> None:
    """Adebayo et al. (2018): a faithful map changes when the weights are randomised.

    Measured on the demo model (16 test cases, 3 model seeds): the signed IG map of
    the fully randomised network has Spearman rho about 0.0 with the trained one;
    the |IG| map keeps rho 0.40-0.45 (0.75 with only the head randomised), as
    Adebayo et al. report for absolute-value maps: the global max pooling of both
    networks picks the high-contrast defect. Thresholds: mean |rho signed| < 0.1,
    mean rho |IG| < 0.55 and falling along the cascade; two trained runs: 1.0.
    """
    model, preprocess, _, _ = demo
    cases = generate(8, split="test", seed=0)
    x = torch.stack([preprocess(c.image) for c in cases])
    t = torch.tensor([CLASS_NAMES.index(c.label) for c in cases])
    state = {k: v.clone() for k, v in model.state_dict().items()}
    trained = _arm(demo, "integrated_gradients")
    a, b = trained.attribute(x, t), trained.attribute(x, t)
    full = _arm(demo, "randomized_model", n_steps=16).attribute(x, t)
    top = _arm(demo, "randomized_model", n_steps=16, levels=1).attribute(x, t)

    def rho(p: torch.Tensor, q: torch.Tensor) -> float:
        return float(np.mean([spearmanr(p[i].flatten(), q[i].flatten())[0] for i in range(len(p))]))

    assert rho(a.abs(), b.abs()) == pytest.approx(1.0)
    assert abs(rho(a, full)) < 0.1
    assert rho(a.abs(), full.abs()) < 0.55
    assert rho(a.abs(), full.abs()) < rho(a.abs(), top.abs()) < 1.0
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), f"{key} of the original model changed"


def test_randomized_model_levels(demo: Any) -> None:
    model, *_ = demo
    arm = build_arm("randomized_model", model, {"levels": 1, "base_method": "saliency"})
    assert arm.params["randomized_layers"] == ["head"]
    assert arm.params["base_method"] == "saliency" and arm.params["abs"] is True
    full = build_arm("randomized_model", model, {})
    assert (
        full.params["randomized_layers"][0] == "head" and len(full.params["randomized_layers"]) == 7
    )
    copy = arm.randomized_model
    assert not torch.equal(copy.head.weight, model.head.weight)
    assert torch.equal(copy.features.conv3.weight, model.features.conv3.weight)


def test_sobel_matches_hand_computation() -> None:
    """A 4×4 vertical step 0|1 between columns 1 and 2, edges repeated (scipy 'reflect' = repeat at radius 1).

    Horizontal Sobel [-1 0 1] ⊗ [1 2 1]: at columns 1 and 2 the difference across
    is 1 - 0 = 1 in every row, smoothed by 1+2+1 = 4; columns 0 and 3 see 0.
    The vertical derivative is 0 everywhere. Magnitude: [0, 4, 4, 0] per row.
    """
    image = torch.tensor([[0.0, 0.0, 1.0, 1.0]] * 4).view(1, 1, 4, 4)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2)).eval()
    out = build_arm("sobel", model, {}).attribute(image, torch.tensor([0]))
    expected = torch.tensor([[0.0, 4.0, 4.0, 0.0]] * 4)
    torch.testing.assert_close(out[0, 0], expected)


def test_saliency_of_a_linear_model_is_its_weights() -> None:
    """d(w·x + b)/dx = w (Simonyan et al. 2014, eq. 2), by hand."""
    linear = nn.Linear(9, 2)
    weights = torch.tensor([[1.0, -2.0, 3.0, 0.0, 0.5, -0.5, 2.0, 1.0, -1.0], [0.0] * 9])
    with torch.no_grad():
        linear.weight.copy_(weights)
        linear.bias.fill_(0.3)
    model = nn.Sequential(nn.Flatten(), linear).eval()
    x = torch.rand(2, 1, 3, 3)
    signed = build_arm("saliency", model, {"abs": False}).attribute(x, torch.tensor([0, 0]))
    magnitude = build_arm("saliency", model, {}).attribute(x, torch.tensor([0, 0]))
    torch.testing.assert_close(signed, weights[0].view(1, 1, 3, 3).expand(2, 1, 3, 3))
    torch.testing.assert_close(magnitude, weights[0].abs().view(1, 1, 3, 3).expand(2, 1, 3, 3))


def test_smoothgrad_without_noise_is_saliency(demo: Any) -> None:
    _, _, x, t = demo
    smooth = _arm(demo, "smoothgrad", stdevs=0.0).attribute(x[:2], t[:2])
    plain = _arm(demo, "saliency").attribute(x[:2], t[:2])
    torch.testing.assert_close(smooth, plain, rtol=1e-5, atol=1e-6)


def test_region_shap_is_constant_on_each_segment(demo: Any) -> None:
    _, _, x, t = demo
    arm = _arm(demo, "region_shap")
    out = arm.attribute(x[:2], t[:2], seed=0)[:, 0].numpy()
    segments = arm.segments(x[:2])
    assert segments.shape == (2, 64, 64)
    for i in range(2):
        labels = np.unique(segments[i])
        assert 4 <= len(labels) <= 30
        for label in labels:
            values = out[i][segments[i] == label]
            assert np.all(values == values[0])
        assert len(np.unique(out[i])) > 1


def test_gradcam_on_named_layer(demo: Any) -> None:
    model, _, x, t = demo
    arm = build_arm("gradcam", model, {}, target_layer="features.conv2")
    out = arm.attribute(x[:2], t[:2])
    assert arm.params["layer"] == "features.conv2"
    assert (out >= 0).all() and out.shape == (2, 1, 64, 64)
    default = build_arm("gradcam", model, {})  # no layer anywhere: the last Conv2d
    assert default.params["layer"] == LAST_CONV
    with pytest.raises(InputError) as err:
        build_arm("guided_gradcam", model, {}, target_layer="features.conv4")
    message = str(err.value)
    assert "layer 'features.conv4' is not in the model" in message
    assert "similar names: features.conv" in message and "set model.target_layer" in message


def test_gradient_passes(demo: Any) -> None:
    expected = {
        "integrated_gradients": 10 * 16,
        "saliency": 10,
        "smoothgrad": 10 * 6,
        "gradient_shap": 10 * 6,
        "deeplift": 20,  # input and baseline rows
        "gradcam": 10,
        "guided_gradcam": 20,
        "region_shap": 10 * 24,
        "randomized_model": 10 * 8,
        "random": 0,
        "sobel": 0,
        "none": 0,
    }
    for method, passes in expected.items():
        assert _arm(demo, method).gradient_passes(10) == passes, method
    occlusion = _arm(demo, "occlusion")
    assert occlusion.gradient_passes(2, image_size=(64, 64)) == 2 * (16 + 1)
    with pytest.raises(InputError, match="needs image_size"):
        occlusion.gradient_passes(2)


@pytest.mark.parametrize(
    ("method", "params", "message"),
    [
        (
            "integrated_gradients",
            {"nsteps": 8},
            "has no parameter 'nsteps'; did you mean 'n_steps'?",
        ),
        ("integrated_gradients", {"n_steps": 0}, "n_steps is 0; use an integer >= 1"),
        (
            "integrated_gradients",
            {"baseline": "white"},
            "baseline is 'white'; use one of black, mean, blur",
        ),
        ("smoothgrad", {"noise_level": -1}, "noise_level is -1; use a finite number >= 0.0"),
        ("occlusion", {"window": 2.5}, "window is 2.5; use an integer >= 1"),
        ("region_shap", {"compactness": 0}, "compactness is 0; use a finite number > 0.0"),
        ("gradcam", {"relu_attributions": "yes"}, "relu_attributions is 'yes'; use true or false"),
        (
            "randomized_model",
            {"base_method": "sobel"},
            "base_method is 'sobel'; use one of integrated_gradients",
        ),
        ("randomized_model", {"levels": 0}, "levels is 0; use an integer >= 1"),
        ("sobel", {"sigma": 2}, "sobel has no parameter 'sigma'; remove it"),
        ("integrated_gradients", ["n_steps"], "params is a list; pass a mapping"),
        ("intgrad", {}, "unknown arm method 'intgrad'; use one of: integrated_gradients"),
        ("integrated_grads", {}, "did you mean 'integrated_gradients'?"),
    ],
)
def test_invalid_params_are_clear(demo: Any, method: str, params: Any, message: str) -> None:
    model, *_ = demo
    with pytest.raises(InputError) as err:
        build_arm(method, model, params)
    assert message in str(err.value)


def test_invalid_calls_are_clear(demo: Any) -> None:
    model, _, x, t = demo
    arm = _arm(demo, "smoothgrad")
    with pytest.raises(
        InputError, match=r"target 4 is out of range; the model has 4 classes, use indices 0 to 3"
    ):
        arm.attribute(x[:2], torch.tensor([0, 4]))
    with pytest.raises(InputError, match=r"target has shape \(3,\)"):
        arm.attribute(x[:2], torch.tensor([0, 1, 2]))
    with pytest.raises(InputError, match="seed is a sequence of 3 values for 2 inputs"):
        arm.attribute(x[:2], t[:2], seed=[1, 2, 3])
    with pytest.raises(InputError, match=r"inputs are \(64, 64\); pass a floating tensor"):
        arm.attribute(x[0, 0], t[:1])
    model.train()
    try:
        with pytest.raises(InputError, match=r"training mode.*call model\.eval"):
            arm.attribute(x[:1], t[:1])
    finally:
        model.eval()


def test_black_without_preprocess_is_recorded(demo: Any) -> None:
    model, *_ = demo
    arm = build_arm("integrated_gradients", model, {"baseline": "black"})
    assert arm.params["black_value"] == 0.0
    assert arm.params["black_value_source"] == "zero (no preprocess given)"
    blur = build_arm("deeplift", model, {"baseline": "blur", "blur_sigma": 3})
    assert blur.params["blur_sigma"] == 3.0 and "black_value" not in blur.params


# --- the protocol's params schemas agree with what the arms read ---------------------------

#: Settings each arm accepts (and so must ``studyhub validate``).
ACCEPTED: list[tuple[str, dict[str, Any]]] = [
    *FAST.items(),
    ("integrated_gradients", {"baseline": "blur", "blur_sigma": 3, "method": "riemann_left"}),
    ("integrated_gradients", {"black_value": [-2.5], "internal_batch_size": 8}),
    ("smoothgrad", {"stdevs": None, "noise_level": 0, "abs": False}),
    ("gradient_shap", {"baseline": "black", "black_value": 0, "stdevs": 0.1}),
    ("occlusion", {"baseline": "mean", "perturbations_per_eval": 1}),
    ("gradcam", {"layer": None, "interpolate_mode": "nearest"}),
    ("region_shap", {"slic_sigma": 0, "compactness": 2.5}),
    ("random", {"sigma": 0}),
    ("randomized_model", {"base_method": "saliency", "levels": "all", "model_seed": 7}),
    ("randomized_model", {"base_method": "smoothgrad", "levels": 2, "nt_samples": 4}),
]

#: Settings an arm refuses: ``studyhub validate`` must refuse them first.
REFUSED: list[tuple[str, dict[str, Any]]] = [
    ("integrated_gradients", {"nsteps": 8}),
    ("integrated_gradients", {"n_steps": 0}),
    ("integrated_gradients", {"n_steps": True}),
    ("integrated_gradients", {"n_steps": 8.0}),
    ("integrated_gradients", {"baseline": "white"}),
    ("integrated_gradients", {"black_value": []}),
    ("integrated_gradients", {"black_value": "zero"}),
    ("integrated_gradients", {"blur_sigma": 0}),
    ("integrated_gradients", {"internal_batch_size": None}),
    ("smoothgrad", {"noise_level": -1}),
    ("smoothgrad", {"stdevs": float("inf")}),
    ("gradient_shap", {"black_value": 0}),
    ("gradient_shap", {"n_samples": 0}),
    ("occlusion", {"window": 2.5}),
    ("occlusion", {"stride": True}),
    ("region_shap", {"compactness": 0}),
    ("region_shap", {"n_segments": 1}),
    ("gradcam", {"relu_attributions": "yes"}),
    ("gradcam", {"interpolate_mode": "linear"}),
    ("guided_gradcam", {"relu_attributions": True}),
    ("random", {"sigma": float("nan")}),
    ("randomized_model", {"base_method": "sobel"}),
    ("randomized_model", {"levels": 0}),
    ("randomized_model", {"levels": True}),
    ("randomized_model", {"base_method": "saliency", "n_steps": 3}),
    ("randomized_model", {"model_seed": -1}),
    ("sobel", {"sigma": 2}),
    ("none", {"render": False}),
]

#: Refused by the schema though the arm would run them: values no study should lock.
STRICTER: list[tuple[str, dict[str, Any]]] = [
    ("integrated_gradients", {"black_value": float("nan")}),
    ("integrated_gradients", {"n_steps": 10**6}),
    ("random", {"sigma": 10**9}),
    ("randomized_model", {"model_seed": 2**64}),
]


def _schema_accepts(method: str, params: dict[str, Any]) -> bool:
    from pydantic import ValidationError

    from studyhub.protocol.arm_params import params_model

    try:
        params_model(method, params).model_validate(params)
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize(("method", "params"), ACCEPTED)
def test_what_validate_accepts_builds(demo: Any, method: str, params: dict[str, Any]) -> None:
    model, preprocess, *_ = demo
    assert _schema_accepts(method, params)
    arm = build_arm(method, model, dict(params), target_layer=LAST_CONV, preprocess=preprocess)
    assert set(params) <= set(arm.params)


@pytest.mark.parametrize(("method", "params"), REFUSED)
def test_what_an_arm_refuses_validate_refuses(
    demo: Any, method: str, params: dict[str, Any]
) -> None:
    model, preprocess, *_ = demo
    with pytest.raises(InputError):
        build_arm(method, model, dict(params), target_layer=LAST_CONV, preprocess=preprocess)
    assert not _schema_accepts(method, params)


@pytest.mark.parametrize(("method", "params"), STRICTER)
def test_validate_refuses_values_no_study_should_lock(method: str, params: dict[str, Any]) -> None:
    assert not _schema_accepts(method, params)
