"""Temperature scaling and the expected calibration error.

References
----------
Guo C, Pleiss G, Sun Y, Weinberger KQ (2017). On calibration of modern neural
networks. ICML. (Temperature scaling; ECE with equal-width confidence bins.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax

from studyhub.errors import DataError

__all__ = [
    "Calibration",
    "expected_calibration_error",
    "fit_temperature",
    "probabilities",
    "temperature_fit_problems",
]

#: Temperature scaling needs at least this many calibration cases.
MIN_CALIBRATION_CASES = 10


def probabilities(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Softmax of ``logits / temperature`` row by row."""
    return np.asarray(softmax(np.asarray(logits, dtype=np.float64) / temperature, axis=1))


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, *, n_bins: int = 15) -> float:
    """ECE: confidence-weighted gap between accuracy and confidence over equal-width bins."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels)
    if probs.ndim != 2 or probs.shape[0] != labels.shape[0] or probs.shape[0] == 0:
        raise DataError(
            f"ECE needs an (n, k) probability matrix and n labels; got {probs.shape} and "
            f"{labels.shape}"
        )
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        in_bin = bins == b
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def temperature_fit_problems(labels: Sequence[object] | np.ndarray) -> list[str]:
    """Why temperature scaling could not be fitted on cases with these labels (empty: it can).

    Parameters
    ----------
    labels : sequence or numpy.ndarray
        The class of each calibration case (indices or names).

    Returns
    -------
    list of str
        Each problem with its fix: fewer than ``MIN_CALIBRATION_CASES`` cases, or a
        single class.
    """
    problems = []
    if len(labels) < MIN_CALIBRATION_CASES:
        problems.append(
            f"temperature scaling needs at least {MIN_CALIBRATION_CASES} calibration cases, got "
            f"{len(labels)}; enlarge the calibration split or set model.calibration_split: null"
        )
    if len({str(v) for v in labels}) < 2:
        problems.append(
            "the calibration split holds a single class; temperature scaling needs several; "
            "use a split with every class"
        )
    return problems


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature minimising the negative log-likelihood of ``labels``.

    Searched on log T in [-3, 3] (T from 0.05 to 20) with a bounded Brent search.
    """
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=int)
    problems = temperature_fit_problems(labels)
    if problems:
        raise DataError(problems[0])
    rows = np.arange(labels.size)

    def nll(log_t: float) -> float:
        return float(-log_softmax(logits / np.exp(log_t), axis=1)[rows, labels].mean())

    best = minimize_scalar(nll, bounds=(-3.0, 3.0), method="bounded", options={"xatol": 1e-6})
    return float(np.exp(best.x))


@dataclass(frozen=True)
class Calibration:
    """A fitted temperature with the ECE before and after, on held-out data."""

    temperature: float
    ece_before: float
    ece_after: float
    n_fit: int
    n_eval: int

    @classmethod
    def fit(
        cls,
        fit_logits: np.ndarray,
        fit_labels: np.ndarray,
        eval_logits: np.ndarray,
        eval_labels: np.ndarray,
    ) -> Calibration:
        """Fit on one split, report the ECE on another (held-out) split."""
        t = fit_temperature(fit_logits, fit_labels)
        return cls(
            temperature=t,
            ece_before=expected_calibration_error(probabilities(eval_logits), eval_labels),
            ece_after=expected_calibration_error(probabilities(eval_logits, t), eval_labels),
            n_fit=len(fit_labels),
            n_eval=len(eval_labels),
        )
