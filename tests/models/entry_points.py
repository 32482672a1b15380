"""Model entry points used by the tests: one good small model and several broken ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn


def _prep(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image, dtype=np.float32)).unsqueeze(0)


def tiny(weights: Path | None = None) -> tuple[nn.Module, object]:
    """A real (untrained, seeded) two-layer model without an embed() method."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 5), nn.ReLU(), nn.Linear(5, 3))
    return model, _prep


def wrong_shape() -> tuple[nn.Module, object]:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 7)), _prep


def not_a_tuple() -> nn.Module:
    return nn.Linear(2, 2)


def not_a_module() -> tuple[object, object]:
    return "model", _prep


def raises() -> tuple[nn.Module, object]:
    raise RuntimeError("CUDA driver not found")


NOT_CALLABLE = 3


class _Scaled(nn.Module):
    """The tiny model with its scores multiplied by ``factor`` (NaN or inf for broken models)."""

    def __init__(self, factor: float) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(16, 5), nn.ReLU(), nn.Linear(5, 3))
        self.factor = factor

    def _broken(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        # one case (the one whose first pixel is brightest) gets the broken values
        broken = x.flatten(1)[:, 0] == x.flatten(1)[:, 0].max()
        return torch.where(broken[:, None], out * self.factor, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._broken(x, self.body(x))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self._broken(x, self.body[:3](x))


def nan_logits() -> tuple[nn.Module, object]:
    return _Scaled(float("nan")), _prep


def inf_logits() -> tuple[nn.Module, object]:
    return _Scaled(float("inf")), _prep


def _refusing_prep(image: np.ndarray) -> torch.Tensor:
    raise ValueError(f"expected an RGB image, got shape {image.shape}")


def preprocess_raises() -> tuple[nn.Module, object]:
    return tiny()[0], _refusing_prep


class _Crashing(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied (2x16 and 64x3)")


def forward_raises() -> tuple[nn.Module, object]:
    return _Crashing(), _prep


def exits() -> tuple[nn.Module, object]:
    import sys

    sys.exit(0)


def interrupted() -> tuple[nn.Module, object]:
    raise KeyboardInterrupt
