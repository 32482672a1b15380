"""Models: loading a user's model by entry point, predictions, calibration, embeddings."""

from studyhub.models.calibration import (
    Calibration,
    expected_calibration_error,
    fit_temperature,
    probabilities,
)
from studyhub.models.entry import LoadedModel, load_model, state_dict_sha256
from studyhub.models.predict import embed, logits

__all__ = [
    "Calibration",
    "LoadedModel",
    "embed",
    "expected_calibration_error",
    "fit_temperature",
    "load_model",
    "logits",
    "probabilities",
    "state_dict_sha256",
]
