"""Per-method schemas of arm params: chosen by method, every field documented, refusals located."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from studyhub.protocol import Arm
from studyhub.protocol.arm_params import (
    ARM_PARAMS,
    CONTROL_METHODS,
    EXPLANATION_METHODS,
    params_model,
)


def test_every_method_has_a_schema() -> None:
    assert set(ARM_PARAMS) == set(EXPLANATION_METHODS) | set(CONTROL_METHODS)


def test_randomized_model_accepts_its_base_methods_parameters() -> None:
    model = params_model("randomized_model", {"base_method": "smoothgrad"})
    assert list(model.model_fields)[:3] == ["base_method", "levels", "model_seed"]
    assert "nt_samples" in model.model_fields and "n_steps" not in model.model_fields
    assert model.owner == "randomized_model (base_method smoothgrad)"
    assert params_model("randomized_model", {}) is params_model(
        "randomized_model", {"base_method": "integrated_gradients"}
    )


def test_a_wrong_base_method_is_the_only_problem_reported() -> None:
    with pytest.raises(ValidationError) as info:
        Arm.model_validate(
            {
                "id": "rm",
                "kind": "control",
                "method": "randomized_model",
                "params": {"base_method": "sobel", "n_steps": 3},
            }
        )
    assert [e["loc"] for e in info.value.errors()] == [("params", "base_method")]


@pytest.mark.parametrize(
    ("method", "params", "loc", "kind"),
    [
        ("integrated_gradients", {"n_steps": -32}, ("params", "n_steps"), "greater_than_equal"),
        ("integrated_gradients", {"n_steps": float("nan")}, ("params", "n_steps"), "int_type"),
        ("smoothgrad", {"stdevs": float("-inf")}, ("params", "stdevs"), "finite_number"),
        ("occlusion", {"stride": 0}, ("params", "stride"), "greater_than_equal"),
        ("region_shap", {"compactness": -1.0}, ("params", "compactness"), "greater_than"),
        ("gradcam", {"layer": ""}, ("params", "layer"), "string_too_short"),
        ("random", {"size": 3}, ("params", "size"), "extra_forbidden"),
        ("gradient_shap", {"blur_sigma": 2.0}, ("params",), "value_error"),
    ],
)
def test_params_are_checked_with_the_arm(
    method: str, params: dict[str, Any], loc: tuple[str, ...], kind: str
) -> None:
    kind_of = "control" if method in CONTROL_METHODS else "method"
    with pytest.raises(ValidationError) as info:
        Arm.model_validate({"id": "a", "kind": kind_of, "method": method, "params": params})
    assert [(e["loc"], e["type"]) for e in info.value.errors()] == [(loc, kind)]


def test_validated_params_are_kept_as_written() -> None:
    params = {"sigma": 4, "extra_spaces": None}
    del params["extra_spaces"]
    arm = Arm.model_validate({"id": "r", "kind": "control", "method": "random", "params": params})
    assert arm.params == {"sigma": 4} and isinstance(arm.params["sigma"], int)
