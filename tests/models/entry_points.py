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
