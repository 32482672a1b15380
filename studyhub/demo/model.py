"""The demo model: a small CNN that classifies synthetic surface-inspection images.

:class:`InspectionNet` has three convolution blocks, global average pooling and a
linear head over :data:`studyhub.demo.synth.CLASS_NAMES`. Pooling is global *max*
pooling: a defect covers under 2% of the image, and global average pooling
dilutes it so much that the small network reached only 55-73% held-out accuracy
in the same training budget (88% with max pooling). Grad-CAM targets its
last convolution by name, ``"features.conv3"`` (:data:`LAST_CONV`), or through
the :attr:`InspectionNet.last_conv` property; :meth:`InspectionNet.embed`
returns the pooled features used for diversity sampling.

:func:`load` is the model entry point (``studyhub.demo.model:load``): the module
in eval mode with the shipped weights, and its preprocessing callable.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from studyhub.demo.synth import CLASS_NAMES
from studyhub.errors import InputError

__all__ = [
    "LAST_CONV",
    "NORM_MEAN",
    "NORM_STD",
    "WEIGHTS_PATH",
    "InspectionNet",
    "load",
    "preprocess",
]

WEIGHTS_PATH: Path = Path(__file__).parent / "weights" / "inspection_cnn.pt"
"""The shipped weights (a plain ``state_dict``); see ``weights/SHA256SUMS``."""

LAST_CONV: str = "features.conv3"
"""Qualified name of the last convolution, the usual Grad-CAM target."""

NORM_MEAN: float = 0.5
"""Intensity subtracted by :func:`preprocess`."""

NORM_STD: float = 0.2
"""Divisor applied by :func:`preprocess` after the mean is subtracted."""


def _block(index: int, c_in: int, c_out: int, pool: bool) -> list[tuple[str, nn.Module]]:
    layers: list[tuple[str, nn.Module]] = [
        (f"conv{index}", nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False)),
        (f"bn{index}", nn.BatchNorm2d(c_out)),
        (f"relu{index}", nn.ReLU()),
    ]
    if pool:
        layers.append((f"pool{index}", nn.MaxPool2d(2)))
    return layers


class InspectionNet(nn.Module):
    """Three conv blocks (16, 32, 64 channels), global max pooling, linear head.

    Input: a batch ``(N, 1, H, W)`` as made by :func:`preprocess` (any size; the
    demo uses 64×64). Output: logits ``(N, len(CLASS_NAMES))``. ReLUs are not
    in-place and not shared, so Captum's hooks (DeepLift, guided
    backpropagation) see every one.

    Parameters
    ----------
    n_classes : int, default len(CLASS_NAMES)
        Number of output classes.
    """

    def __init__(self, n_classes: int = len(CLASS_NAMES)) -> None:
        super().__init__()
        self.features = nn.Sequential(
            OrderedDict(
                _block(1, 1, 16, pool=True)
                + _block(2, 16, 32, pool=True)
                + _block(3, 32, 64, pool=False)
            )
        )
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.head = nn.Linear(64, n_classes)

    @property
    def last_conv(self) -> nn.Module:
        """The last convolution (``features.conv3``), for Grad-CAM."""
        return self.features.get_submodule("conv3")

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled penultimate features ``(N, 64)``, for diversity sampling.

        Parameters
        ----------
        x : torch.Tensor
            Batch ``(N, 1, H, W)`` from :func:`preprocess`.

        Returns
        -------
        torch.Tensor
            The features the linear head reads.
        """
        return torch.flatten(self.pool(self.features(x)), 1)

    penultimate = embed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return class logits ``(N, n_classes)`` for a batch ``(N, 1, H, W)``."""
        return self.head(self.embed(x))


def preprocess(image: NDArray[np.generic]) -> torch.Tensor:
    """Turn one grayscale image into the model's normalized input tensor.

    Parameters
    ----------
    image : numpy.ndarray
        ``(H, W)`` (or ``(H, W, 1)``) array: floats in [0, 1], or ``uint8``
        pixels, which are divided by 255.

    Returns
    -------
    torch.Tensor
        ``float32`` tensor ``(1, H, W)``, ``(image - NORM_MEAN) / NORM_STD``.
        Stack several with :func:`torch.stack` to make a batch.

    Raises
    ------
    InputError
        If the array is not a single-channel image or a float image leaves [0, 1].
    """
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 2:
        raise InputError(
            f"image has shape {array.shape}; pass one grayscale image of shape (H, W) "
            "(convert colour images to grayscale first)"
        )
    if array.dtype == np.uint8:
        array = array.astype(np.float32) / np.float32(255.0)
    elif np.issubdtype(array.dtype, np.floating):
        low, high = float(array.min()), float(array.max())
        if low < 0.0 or high > 1.0:
            raise InputError(
                f"image intensities span [{low:.3g}, {high:.3g}]; scale them to [0, 1] "
                "(or pass uint8 pixels)"
            )
    else:
        raise InputError(f"image has dtype {array.dtype}; pass floats in [0, 1] or uint8 pixels")
    tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    return ((tensor - NORM_MEAN) / NORM_STD).unsqueeze(0)


def load(
    weights: str | Path | None = None,
) -> tuple[nn.Module, Callable[[NDArray[np.generic]], torch.Tensor]]:
    """Model entry point: the demo CNN with its weights, in eval mode, and its preprocessing.

    Parameters
    ----------
    weights : str or Path, optional
        A ``state_dict`` file; default the shipped :data:`WEIGHTS_PATH`.

    Returns
    -------
    tuple of (torch.nn.Module, callable)
        The :class:`InspectionNet` on the CPU in eval mode, and :func:`preprocess`.

    Raises
    ------
    InputError
        If the weights file is missing or does not fit :class:`InspectionNet`.
    """
    path = WEIGHTS_PATH if weights is None else Path(weights)
    if not path.is_file():
        raise InputError(
            f"weights file {str(path)!r} does not exist; pass the path of a state_dict "
            "saved by `python -m studyhub.demo.train`"
        )
    model = InspectionNet()
    state = torch.load(path, map_location="cpu", weights_only=True)
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise InputError(
            f"weights file {str(path)!r} does not fit InspectionNet ({exc}); "
            "retrain with `python -m studyhub.demo.train`"
        ) from exc
    model.eval()
    return model, preprocess
