"""Temperature scaling and ECE: hand-computed values, recovery by simulation, the demo model."""

from __future__ import annotations

import numpy as np
import pytest

from studyhub.errors import DataError
from studyhub.models import Calibration, expected_calibration_error, fit_temperature, probabilities


def test_ece_hand_computed() -> None:
    probs = np.array([[0.9, 0.1], [0.65, 0.35], [0.2, 0.8], [0.45, 0.55]])
    labels = np.array([0, 1, 1, 1])
    # 10 bins: confidences 0.9 (bin 9, correct), 0.65 (bin 6, wrong), 0.8 (bin 8, correct),
    # 0.55 (bin 5, correct). ECE = (|1-.9| + |0-.65| + |1-.8| + |1-.55|) / 4
    expected = (0.1 + 0.65 + 0.2 + 0.45) / 4
    assert expected_calibration_error(probs, labels, n_bins=10) == pytest.approx(expected)


def test_perfectly_calibrated_model_has_small_ece() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(0, 2, size=(50_000, 4))
    p = probabilities(z)
    y = np.array([rng.choice(4, p=row) for row in p[:20_000]])
    assert expected_calibration_error(p[:20_000], y) < 0.015


@pytest.mark.parametrize("true_t", [0.5, 2.0])
def test_temperature_is_recovered(true_t: float) -> None:
    rng = np.random.default_rng(1)
    z = rng.normal(0, 3, size=(20_000, 3))
    p = probabilities(z, true_t)
    y = (p.cumsum(axis=1) > rng.random((20_000, 1))).argmax(axis=1)
    assert fit_temperature(z, y) == pytest.approx(true_t, rel=0.05)


def test_fit_refuses_tiny_or_single_class_splits() -> None:
    with pytest.raises(DataError, match="at least 10 calibration cases, got 3"):
        fit_temperature(np.zeros((3, 2)), np.array([0, 1, 0]))
    with pytest.raises(DataError, match="single class"):
        fit_temperature(np.zeros((20, 2)), np.zeros(20, dtype=int))


def test_calibration_lowers_the_demo_models_ece_on_held_out_data() -> None:
    from studyhub.demo.synth import CLASS_NAMES, generate
    from studyhub.models import load_model, logits

    model = load_model("studyhub.demo.model:load")

    def split(name: str) -> tuple[np.ndarray, np.ndarray]:
        samples = generate(400, split=name, seed=0)
        scores = logits(model, [s.image for s in samples], n_classes=len(CLASS_NAMES))
        return scores, np.array([CLASS_NAMES.index(s.label) for s in samples])

    fit_z, fit_y = split("calibration")
    test_z, test_y = split("test")
    cal = Calibration.fit(fit_z, fit_y, test_z, test_y)
    assert cal.ece_after < cal.ece_before
    assert cal.temperature != pytest.approx(1.0, abs=1e-3)


def test_temperature_fit_problems_lists_both_and_fit_refuses_the_first() -> None:
    from studyhub.models.calibration import temperature_fit_problems

    problems = temperature_fit_problems(np.zeros(3, dtype=int))
    assert len(problems) == 2
    assert "needs at least 10 calibration cases, got 3" in problems[0]
    assert "holds a single class" in problems[1]
    with pytest.raises(DataError) as info:
        fit_temperature(np.zeros((3, 2)), np.zeros(3, dtype=int))
    assert str(info.value) == problems[0]
    assert temperature_fit_problems(["a", "b"] * 5) == []
