"""The cases a sampling plan draws from and calibrates on, and what it would refuse in them.

``studyhub sample`` and ``studyhub enroll`` (:mod:`studyhub.cases.enroll`) and
the pre-flight check of ``validate --preflight`` / ``register`` call the same
functions, so a split or quota that sampling would refuse is refused before the
protocol is locked, with the same message.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from studyhub.cases.records import CaseRecord
from studyhub.models.calibration import temperature_fit_problems
from studyhub.protocol.schema import Protocol

__all__ = ["calibration_cases", "no_case_in", "pool_cases", "pool_frame", "split_problems"]


def pool_cases(protocol: Protocol, records: list[CaseRecord]) -> list[CaseRecord]:
    """The cases of ``sampling.pool_split`` (every case when it is null)."""
    split = protocol.sampling.pool_split
    return [r for r in records if split is None or r.split == split]


def calibration_cases(protocol: Protocol, records: list[CaseRecord]) -> list[CaseRecord]:
    """The cases temperature scaling is fitted on (none when calibration is off)."""
    split = protocol.model.calibration_split
    return [] if split is None else [r for r in records if r.split == split]


def no_case_in(records: list[CaseRecord], key: str, split: str) -> str:
    """The message for a split (named by protocol ``key``) that no case belongs to."""
    splits = sorted({r.split for r in records if r.split is not None})
    found = f"the data's splits are {splits}" if splits else "the data has no split column"
    return (
        f"{key} is {split!r} but no case belongs to that split ({found}); name an existing "
        "split or set it to null"
    )


def split_problems(protocol: Protocol, records: list[CaseRecord]) -> list[str]:
    """What ``studyhub sample`` and ``studyhub enroll`` would refuse in the splits.

    Parameters
    ----------
    protocol : Protocol
        The protocol.
    records : list of CaseRecord
        Every case of its data source.

    Returns
    -------
    list of str
        Each problem with the value and the fix: a ``sampling.pool_split`` or a
        ``model.calibration_split`` that no case belongs to, a calibration split
        too small or of a single class for temperature scaling.
    """
    problems = []
    pool_split = protocol.sampling.pool_split
    if pool_split is not None and not pool_cases(protocol, records):
        problems.append(no_case_in(records, "sampling.pool_split", pool_split))
    split = protocol.model.calibration_split
    if split is not None:
        fit = calibration_cases(protocol, records)
        if not fit:
            problems.append(no_case_in(records, "model.calibration_split", split))
        else:
            problems += [
                f"model.calibration_split {split!r}: {p}"
                for p in temperature_fit_problems([r.label for r in fit])
            ]
    return problems


def pool_frame(
    records: list[CaseRecord], labels: list[str], probabilities: np.ndarray | None = None
) -> pd.DataFrame:
    """The eligible pool as :func:`~studyhub.cases.sampling.draw_sample` takes it.

    Parameters
    ----------
    records : list of CaseRecord
        The eligible cases.
    labels : list of str
        ``data.labels``, in the model's output order.
    probabilities : numpy.ndarray, optional
        ``(len(records), len(labels))`` calibrated probabilities; without them the
        frame has no ``predicted``, ``correct`` and ``confidence`` columns (enough
        for every check but those of the model strata).

    Returns
    -------
    pandas.DataFrame
        One row per case: ``key``, ``label``, the prediction columns and metadata.
    """
    rows = []
    for i, r in enumerate(records):
        row: dict[str, Any] = {"key": r.case_key, "label": r.label}
        if probabilities is not None:
            k = int(probabilities[i].argmax())
            row.update(
                predicted=labels[k],
                correct=labels[k] == r.label,
                confidence=float(probabilities[i, k]),
            )
        row.update(
            {
                k: v
                for k, v in r.metadata.items()
                if k not in ("key", "label", "correct", "confidence")
            }
        )
        rows.append(row)
    return pd.DataFrame(rows)
