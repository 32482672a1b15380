"""Loading a user's model from its entry point, and fingerprinting its weights.

A protocol names ``package.module:function``; the function takes the weights path
(or ``None`` for weights it ships itself) and returns ``(torch.nn.Module,
preprocess)``, where ``preprocess`` turns one image array into the model's input
tensor (without the batch dimension).
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from studyhub.errors import InputError

__all__ = ["LoadedModel", "describe_failure", "load_model", "state_dict_sha256"]

Preprocess = Callable[[np.ndarray], torch.Tensor]


@dataclass(frozen=True)
class LoadedModel:
    """A model ready for predictions, with the fingerprint of its weights."""

    entry_point: str
    module: nn.Module
    preprocess: Preprocess
    weights_sha256: str
    weights_file: Path | None


def state_dict_sha256(module: nn.Module) -> str:
    """SHA-256 over every parameter and buffer: names, dtypes, shapes and bytes.

    Independent of how the weights were stored (file format, pickling), so the
    same trained model always has the same fingerprint on every machine.
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
        digest.update(
            t.numpy().tobytes()
            if t.dtype != torch.bfloat16
            else t.view(torch.int16).numpy().tobytes()
        )
    return digest.hexdigest()


def describe_failure(exc: BaseException) -> str:
    """An exception from user code in words: its type and message, or the sys.exit code.

    Examples
    --------
    >>> describe_failure(ValueError("bad size"))
    'ValueError: bad size'
    >>> describe_failure(SystemExit(0))
    'SystemExit (sys.exit(0))'
    """
    if isinstance(exc, SystemExit):
        return f"SystemExit (sys.exit({exc.code!r}))"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _import(entry_point: str, module_name: str) -> Any:
    """Import the entry point's module; whatever the import raises becomes an InputError.

    ``KeyboardInterrupt`` is not caught: Ctrl-C still stops the command.
    """
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise InputError(
            f"model entry point {entry_point!r}: cannot import {module_name!r} ({exc}); "
            "install the package that provides it or fix model.entry_point"
        ) from None
    except (Exception, SystemExit) as exc:  # the module's own code failed while importing
        raise InputError(
            f"model entry point {entry_point!r}: importing {module_name!r} raised "
            f"{describe_failure(exc)}; fix the module's top-level code (python -c 'import "
            f"{module_name}' shows the traceback)"
        ) from None


def load_model(entry_point: str, weights: Path | None = None) -> LoadedModel:
    """Import and call ``entry_point``; check what it returns.

    Raises
    ------
    InputError
        Naming the entry point, when it cannot be imported, raises (or calls
        ``sys.exit``) while being imported or called, is not callable, or does not
        return ``(torch.nn.Module, callable)``. ``KeyboardInterrupt`` is not caught.
    """
    module_name, _, func_name = entry_point.partition(":")
    if not module_name or not func_name:
        raise InputError(
            f"model entry point {entry_point!r} is not of the form package.module:function; "
            "fix model.entry_point in the protocol"
        )
    py_module = _import(entry_point, module_name)
    func = getattr(py_module, func_name, None)
    if not callable(func):
        raise InputError(
            f"model entry point {entry_point!r}: {module_name!r} has no function {func_name!r}; "
            "fix model.entry_point"
        )
    if weights is not None and not weights.is_file():
        raise InputError(
            f"model weights {str(weights)!r} do not exist; fix model.weights in the protocol"
        )
    try:
        takes_argument = bool(inspect.signature(func).parameters)
        result: Any = func(weights) if takes_argument else func()
    except InputError as exc:
        raise InputError(f"model entry point {entry_point!r} failed: {exc}") from None
    except SystemExit as exc:
        raise InputError(
            f"model entry point {entry_point!r} called sys.exit({exc.code!r}) instead of "
            "returning; remove the sys.exit call and return (torch.nn.Module, preprocess)"
        ) from None
    except Exception as exc:
        raise InputError(
            f"model entry point {entry_point!r} raised {describe_failure(exc)}; "
            "check the weights file and the entry point's code"
        ) from None
    if not (isinstance(result, tuple) and len(result) == 2):
        raise InputError(
            f"model entry point {entry_point!r} returned {type(result).__name__}; it must "
            "return a tuple (torch.nn.Module, preprocess)"
        )
    module, preprocess = result
    if not isinstance(module, nn.Module):
        raise InputError(
            f"model entry point {entry_point!r} returned {type(module).__name__} as its model; "
            "return a torch.nn.Module first"
        )
    if not callable(preprocess):
        raise InputError(
            f"model entry point {entry_point!r} returned a non-callable preprocess "
            f"({type(preprocess).__name__}); return a function image -> tensor second"
        )
    module.eval()
    return LoadedModel(entry_point, module, preprocess, state_dict_sha256(module), weights)
