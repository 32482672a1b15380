"""The arm contract, parameter checking, per-item seeding and baselines.

Every arm follows Captum's shape: configuration in the constructor, work in
:meth:`Arm.attribute`, and a result with the input's shape. This module holds
what all arms share, so each method module stays one idea.

Seeding contract
----------------
``attribute(..., seed=...)`` takes one int or a sequence of one int per input.
Item ``i`` draws its random numbers from its own :class:`torch.Generator` (on
the CPU, so the draws do not depend on the device), seeded from
``(seed_i, digest of the item's float32 values)`` through
:class:`numpy.random.SeedSequence`. An item's randomness is therefore a pure
function of its own seed and its own pixels: splitting a batch, reordering it
or computing an item alone gives the same map, and two different images under
one protocol seed still get independent noise (so the ``random`` control does
not show every case the same map). Nothing reads or leaves global RNG state;
where Captum draws from the global generator (KernelShap), the draw happens
inside :func:`torch.random.fork_rng`, which restores it.
"""

from __future__ import annotations

import difflib
import hashlib
import math
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from studyhub.errors import InputError

__all__ = [
    "BASELINES",
    "Arm",
    "ParamReader",
    "Preprocess",
    "SeedLike",
    "black_value_from",
    "gaussian_blur",
    "item_generators",
    "item_seeds",
    "make_baseline",
    "read_baseline",
    "seeded_global_rng",
]

SeedLike = int | Sequence[int]
"""One seed for the whole batch (each item still gets its own stream) or one per item."""

Preprocess = Callable[[Any], Tensor]
"""A model entry point's preprocessing: one image array in, a ``(C, H, W)`` tensor out."""

BASELINES = ("black", "mean", "blur")
"""Reference inputs of path and perturbation methods.

``black``
    every pixel at the value a black image takes after preprocessing
    (``black_value``).
``mean``
    every pixel of a channel at the image's own mean of that channel: an image
    with no structure and the same overall brightness.
``blur``
    the image blurred by a Gaussian of ``blur_sigma`` pixels: fine structure
    removed, coarse shading kept (Sturmfels et al., Distill 2020).
"""


class ParamReader:
    """Read and check an arm's ``params``, filling defaults; reject unknown names.

    Parameters
    ----------
    method : str
        The protocol method name, used in messages.
    params : dict
        The arm's parameters from the protocol.
    """

    def __init__(self, method: str, params: dict[str, Any] | None) -> None:
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise InputError(
                f"{method} params is a {type(params).__name__}; pass a mapping of "
                "parameter names to values (e.g. {n_steps: 32})"
            )
        self.method = method
        self.given = dict(params)
        self.known: list[str] = []

    def fail(self, name: str, value: object, want: str) -> InputError:
        return InputError(f"{self.method} parameter {name} is {value!r}; use {want}")

    def has(self, name: str) -> bool:
        """Whether the protocol set ``name`` (declares it known)."""
        self.known.append(name)
        return name in self.given

    def integer(self, name: str, default: int, *, minimum: int = 1) -> int:
        """An integer parameter, at least ``minimum``."""
        self.known.append(name)
        value = self.given.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(name, value, f"an integer >= {minimum}")
        return int(value)

    def number(
        self, name: str, default: float | None, *, minimum: float = 0.0, strict: bool = False
    ) -> float | None:
        """A real parameter >= ``minimum`` (> when ``strict``); may default to None."""
        self.known.append(name)
        value = self.given.get(name, default)
        if value is None and default is None:
            return None
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok and math.isfinite(float(value)):  # type: ignore[arg-type]
            number = float(value)  # type: ignore[arg-type]
            if number > minimum or (number == minimum and not strict):
                return number
        relation = ">" if strict else ">="
        raise self.fail(name, value, f"a finite number {relation} {minimum}")

    def choice(self, name: str, default: str, options: Sequence[str]) -> str:
        """One of ``options``."""
        self.known.append(name)
        value = self.given.get(name, default)
        if value not in options:
            raise self.fail(name, value, "one of " + ", ".join(options))
        return str(value)

    def boolean(self, name: str, default: bool) -> bool:
        """``true`` or ``false``."""
        self.known.append(name)
        value = self.given.get(name, default)
        if not isinstance(value, bool):
            raise self.fail(name, value, "true or false")
        return value

    def text(self, name: str, default: str | None) -> str | None:
        """A string parameter, or None."""
        self.known.append(name)
        value = self.given.get(name, default)
        if value is not None and not isinstance(value, str):
            raise self.fail(name, value, "a string")
        return value

    def finish(self) -> None:
        """Raise :class:`InputError` for any parameter no reader asked for."""
        unknown = [name for name in self.given if name not in self.known]
        if not unknown:
            return
        name = unknown[0]
        close = difflib.get_close_matches(str(name), self.known, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        known = ", ".join(sorted(set(self.known))) or "none"
        raise InputError(
            f"{self.method} has no parameter {name!r}; {hint}remove it or use one of: {known}"
        )


def black_value_from(preprocess: Preprocess | None) -> list[float] | None:
    """Per-channel value of a black image after ``preprocess`` (None without one).

    Tries an ``(H, W)`` uint8 image, then ``(H, W, 3)``; the spatial mean of each
    output channel is the value (a normalisation maps black to a constant).
    """
    if preprocess is None:
        return None
    for shape in ((32, 32), (32, 32, 3)):
        try:
            out = preprocess(np.zeros(shape, dtype=np.uint8))
        except Exception:  # any failure means "try the next shape"
            continue
        tensor = torch.as_tensor(out, dtype=torch.float64)
        if tensor.ndim == 2:
            tensor = tensor.unsqueeze(0)
        if tensor.ndim == 3:
            return [float(v) for v in tensor.mean(dim=(1, 2))]
    raise InputError(
        "preprocess did not accept a black (32, 32) or (32, 32, 3) uint8 image; "
        "set the arm's black_value parameter instead"
    )


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of ``(N, C, H, W)`` per channel, edges repeated."""
    if sigma <= 0:
        return x.clone()
    radius = max(1, math.ceil(3.0 * sigma))
    grid = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (grid / sigma) ** 2)
    kernel = (kernel / kernel.sum()).to(dtype=x.dtype, device=x.device)
    n, c, h, w = x.shape
    flat = x.reshape(n * c, 1, h, w)
    flat = F.conv2d(F.pad(flat, (radius, radius, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1))
    flat = F.conv2d(F.pad(flat, (0, 0, radius, radius), mode="replicate"), kernel.view(1, 1, -1, 1))
    return flat.reshape(n, c, h, w)


def read_baseline(reader: ParamReader, preprocess: Preprocess | None) -> dict[str, Any]:
    """Read ``baseline`` (and ``black_value`` / ``blur_sigma``) into provenance params."""
    kind = reader.choice("baseline", "black", BASELINES)
    out: dict[str, Any] = {"baseline": kind}
    given_black = reader.has("black_value")
    if given_black:
        value = reader.given["black_value"]
        values = value if isinstance(value, list) else [value]
        if not values or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in values
        ):
            raise reader.fail("black_value", value, "a number or a list of one per channel")
        black = [float(v) for v in values]
        source = "params"
    else:
        derived = black_value_from(preprocess)
        source = "preprocess" if derived is not None else "zero (no preprocess given)"
        black = derived if derived is not None else [0.0]
    sigma = reader.number("blur_sigma", 5.0, minimum=0.0, strict=True)
    if kind == "black":
        out["black_value"] = black[0] if len(black) == 1 else black
        out["black_value_source"] = source
    if kind == "blur":
        out["blur_sigma"] = sigma
    return out


def make_baseline(x: Tensor, spec: dict[str, Any]) -> Tensor:
    """The baseline tensor for inputs ``x`` under a :func:`read_baseline` spec."""
    kind = spec["baseline"]
    if kind == "mean":
        return x.mean(dim=(2, 3), keepdim=True).expand_as(x).contiguous()
    if kind == "blur":
        return gaussian_blur(x, float(spec["blur_sigma"]))
    value = spec["black_value"]
    values = torch.tensor(value if isinstance(value, list) else [value], dtype=x.dtype)
    if values.numel() not in (1, x.shape[1]):
        raise InputError(
            f"black_value has {values.numel()} channel values but the inputs have "
            f"{x.shape[1]} channels; give one value or one per channel"
        )
    return values.to(x.device).view(1, -1, 1, 1).expand_as(x).contiguous()


def item_seeds(seed: SeedLike, inputs: Tensor) -> list[int]:
    """One 64-bit seed per item from ``(seed_i, digest of the item's values)``.

    Raises
    ------
    InputError
        If ``seed`` is not a non-negative int or a sequence of N of them.
    """
    n = inputs.shape[0]
    if isinstance(seed, int | np.integer) and not isinstance(seed, bool):
        seeds = [int(seed)] * n
    elif isinstance(seed, Sequence) and not isinstance(seed, str):
        seeds = [
            int(s) for s in seed if isinstance(s, int | np.integer) and not isinstance(s, bool)
        ]
        if len(seeds) != len(seed) or len(seeds) != n:
            raise InputError(
                f"seed is a sequence of {len(seed)} values for {n} inputs; pass one int, "
                "or one non-negative int per input"
            )
    else:
        raise InputError(f"seed is {seed!r}; pass a non-negative int or one int per input")
    if any(s < 0 for s in seeds):
        raise InputError(f"seed {min(seeds)} is negative; use non-negative seeds")
    values = inputs.detach().to("cpu", torch.float32).contiguous().numpy()
    out = []
    for s, item in zip(seeds, values, strict=True):
        digest = hashlib.blake2b(item.tobytes(), digest_size=8).digest()
        words = np.frombuffer(digest, dtype=np.uint32).tolist()
        state = np.random.SeedSequence([s, *words]).generate_state(2, np.uint32)
        out.append((int(state[0]) << 31) ^ int(state[1]))
    return out


def item_generators(seeds: Sequence[int]) -> list[torch.Generator]:
    """A CPU :class:`torch.Generator` per item seed."""
    return [torch.Generator(device="cpu").manual_seed(s) for s in seeds]


@contextmanager
def seeded_global_rng(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch's global RNG for code that only uses it, restoring it afterwards."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


_CAPTUM_NOTICES = (
    ".*did not already require gradients.*",
    ".*Setting backward hooks on ReLU.*",
    ".*hooks and attributes on non-linear.*",
)
"""Captum notices about what it does to our private copy and hooks: expected, not news."""


class Arm(ABC):
    """One explanation method or control, configured once and applied to batches.

    Attributes
    ----------
    method : str
        The protocol method name.
    params : dict
        Every parameter the arm uses, defaults filled, for provenance.
    deterministic : bool
        Whether the map depends on nothing but the inputs (else also on ``seed``).
    produces_map : bool
        False only for the ``none`` control, whose zeros must not be rendered.
    """

    method: ClassVar[str] = ""
    deterministic: ClassVar[bool] = True
    produces_map: ClassVar[bool] = True

    def __init__(self, model: nn.Module, params: dict[str, Any]) -> None:
        self.model = model
        self.params = params
        self._n_classes: int | None = None

    def attribute(
        self, inputs: Tensor, target: Tensor | Sequence[int] | int, *, seed: SeedLike = 0
    ) -> Tensor:
        """Attribute the model's ``target`` logit to each input pixel.

        Parameters
        ----------
        inputs : torch.Tensor
            Preprocessed batch ``(N, C, H, W)``; never modified.
        target : torch.Tensor, sequence of int or int
            Class index per input ``(N,)`` (an int applies to all).
        seed : int or sequence of int, default 0
            Seed of stochastic arms (see the module's seeding contract).

        Returns
        -------
        torch.Tensor
            ``float32`` attributions with the shape of ``inputs``.

        Raises
        ------
        InputError
            If the inputs are not a 4-D floating tensor, a target is out of
            range, the seed is malformed or the model is in training mode.
        """
        if not isinstance(inputs, Tensor) or inputs.ndim != 4 or not inputs.is_floating_point():
            shape = tuple(inputs.shape) if isinstance(inputs, Tensor) else type(inputs).__name__
            raise InputError(
                f"{self.method} inputs are {shape}; pass a floating tensor (N, C, H, W) "
                "(stack preprocessed images with torch.stack)"
            )
        if self.model.training:
            raise InputError(
                f"{self.method}: the model is in training mode, so BatchNorm and dropout would "
                "change it and the maps; call model.eval() first"
            )
        x = inputs.detach().clone()
        t = self._check_target(target, x)
        seeds = item_seeds(seed, x) if not self.deterministic else []
        with warnings.catch_warnings():
            for message in _CAPTUM_NOTICES:
                warnings.filterwarnings("ignore", message=message, category=UserWarning)
            out = self._attribute(x, t, seeds)
        if out.shape[1] == 1 and x.shape[1] != 1:
            out = out.expand(-1, x.shape[1], -1, -1)
        return out.detach().to(torch.float32).contiguous()

    def _check_target(self, target: Tensor | Sequence[int] | int, x: Tensor) -> Tensor:
        n = x.shape[0]
        t = torch.as_tensor(target).to("cpu")
        if t.ndim == 0:
            t = t.expand(n)
        if t.dtype.is_floating_point or t.dtype == torch.bool or t.shape != (n,):
            raise InputError(
                f"{self.method} target has shape {tuple(t.shape)} and dtype {t.dtype}; pass "
                f"one integer class index per input, shape ({n},)"
            )
        if self._n_classes is None:
            with torch.no_grad():
                self._n_classes = int(self.model(x[:1]).shape[-1])
        low, high = int(t.min()), int(t.max())
        if low < 0 or high >= self._n_classes:
            bad = low if low < 0 else high
            raise InputError(
                f"{self.method} target {bad} is out of range; the model has "
                f"{self._n_classes} classes, use indices 0 to {self._n_classes - 1}"
            )
        return t.to(device=x.device, dtype=torch.long)

    @abstractmethod
    def _attribute(self, x: Tensor, target: Tensor, seeds: list[int]) -> Tensor:
        """Compute on a private copy ``x``; ``seeds`` is empty for deterministic arms."""

    @abstractmethod
    def gradient_passes(self, n: int, *, image_size: tuple[int, int] | None = None) -> int:
        """Forward+backward passes the method needs for ``n`` inputs (forwards for perturbation)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params})"
