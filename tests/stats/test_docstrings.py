"""The examples in the statistics docstrings run and print what they say."""

from __future__ import annotations

import doctest
import importlib

import pytest

from tests.paths import ROOT

MODULES = [
    "krippendorff",
    "icc",
    "kappa",
    "compare",
    "bootstrap",
    "power",
    "correlation",
    "mrmc",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(ROOT)
    module = importlib.import_module(f"studyhub.stats.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
    assert result.attempted > 0
