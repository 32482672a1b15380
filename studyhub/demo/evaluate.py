"""Predictions of the demo model and a measurement of its stamp shortcut.

The shortcut is measured three ways on a held-out split (where the stamp is
independent of the class): pit recall on stamped vs unstamped pit images, the
rate of "pit" predictions on stamped vs unstamped non-pit images, and the
paired counterfactual of :func:`studyhub.demo.synth.with_stamp` — the same case
re-rendered with and without the stamp, everything else identical.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from studyhub.demo.synth import CLASS_NAMES, Sample, with_stamp
from studyhub.errors import InputError

__all__ = [
    "ModelAgreement",
    "ShortcutReport",
    "accuracy",
    "compare_models",
    "measure_shortcut",
    "predict_proba",
]

_PIT = CLASS_NAMES.index("pit")

Preprocess = Callable[[NDArray[np.generic]], torch.Tensor]


def predict_proba(
    model: nn.Module,
    preprocess: Preprocess,
    samples: Sequence[Sample],
    *,
    batch_size: int = 256,
) -> NDArray[np.float64]:
    """Class probabilities (softmax of the logits) for each sample.

    Parameters
    ----------
    model : torch.nn.Module
        A classifier in eval mode, e.g. from :func:`studyhub.demo.model.load`.
    preprocess : callable
        Image -> ``(1, H, W)`` tensor.
    samples : sequence of Sample
        Cases to classify; at least one.
    batch_size : int, default 256
        Images per forward pass.

    Returns
    -------
    numpy.ndarray
        ``(len(samples), n_classes)`` probabilities.
    """
    if len(samples) == 0:
        raise InputError("samples is empty; pass at least one Sample to classify")
    if batch_size < 1:
        raise InputError(f"batch_size is {batch_size}; pass an integer >= 1")
    chunks = []
    with torch.no_grad():
        for start in range(0, len(samples), batch_size):
            batch = torch.stack([preprocess(s.image) for s in samples[start : start + batch_size]])
            chunks.append(torch.softmax(model(batch), dim=1).double().numpy())
    return np.concatenate(chunks, axis=0)


def accuracy(model: nn.Module, preprocess: Preprocess, samples: Sequence[Sample]) -> float:
    """Fraction of samples whose most probable class is their label.

    Parameters
    ----------
    model : torch.nn.Module
        A classifier in eval mode.
    preprocess : callable
        Image -> ``(1, H, W)`` tensor.
    samples : sequence of Sample
        Labelled cases.

    Returns
    -------
    float
        Accuracy in [0, 1].
    """
    predicted = predict_proba(model, preprocess, samples).argmax(axis=1)
    labels = np.array([s.label_index for s in samples])
    return float(np.mean(predicted == labels))


@dataclass(frozen=True)
class ModelAgreement:
    """How alike two models classify the same held-out cases.

    Attributes
    ----------
    n : int
        Number of cases.
    accuracy_reference, accuracy_other : float
        Accuracy of each model.
    agreement : float
        Fraction of cases both models assign the same class.
    """

    n: int
    accuracy_reference: float
    accuracy_other: float
    agreement: float

    def within(self, *, accuracy_points: float, min_agreement: float) -> bool:
        """Whether the accuracies differ by at most ``accuracy_points`` (a fraction, e.g.
        0.02) and the models agree on at least ``min_agreement`` of the cases."""
        gap = abs(self.accuracy_other - self.accuracy_reference)
        return gap <= accuracy_points and self.agreement >= min_agreement


def compare_models(
    reference: nn.Module, other: nn.Module, preprocess: Preprocess, samples: Sequence[Sample]
) -> ModelAgreement:
    """Accuracy of two models and how often they predict the same class.

    Parameters
    ----------
    reference, other : torch.nn.Module
        Classifiers in eval mode (e.g. the shipped weights and a retrained model).
    preprocess : callable
        Image -> ``(1, H, W)`` tensor.
    samples : sequence of Sample
        Labelled held-out cases.

    Returns
    -------
    ModelAgreement
    """
    labels = np.array([s.label_index for s in samples])
    a = predict_proba(reference, preprocess, samples).argmax(axis=1)
    b = predict_proba(other, preprocess, samples).argmax(axis=1)
    return ModelAgreement(
        n=len(samples),
        accuracy_reference=float(np.mean(a == labels)),
        accuracy_other=float(np.mean(b == labels)),
        agreement=float(np.mean(a == b)),
    )


@dataclass(frozen=True)
class ShortcutReport:
    """How much a model's "pit" predictions depend on the stamp mark.

    Attributes
    ----------
    n : int
        Number of cases measured.
    accuracy : float
        Accuracy on the cases as generated.
    pit_recall_stamped, pit_recall_unstamped : float
        Recall of ``pit`` among pit cases with / without the stamp.
    pit_rate_other_stamped, pit_rate_other_unstamped : float
        Fraction predicted ``pit`` among non-pit cases with / without the stamp.
    pit_prob_shift : float
        Mean over all cases of P(pit | stamp added) - P(pit | stamp removed),
        from the paired counterfactual re-rendering.
    flip_to_pit : float
        Among non-pit cases not predicted ``pit`` without the stamp, the
        fraction predicted ``pit`` once the stamp is added.
    flip_from_pit : float
        Among pit cases predicted ``pit`` with the stamp, the fraction no longer
        predicted ``pit`` once it is removed.
    """

    n: int
    accuracy: float
    pit_recall_stamped: float
    pit_recall_unstamped: float
    pit_rate_other_stamped: float
    pit_rate_other_unstamped: float
    pit_prob_shift: float
    flip_to_pit: float
    flip_from_pit: float

    def summary(self) -> str:
        """A few lines for a console, percentages rounded to one decimal."""
        return "\n".join(
            [
                f"cases: {self.n}, accuracy: {100 * self.accuracy:.1f}%",
                f"pit recall: stamped {100 * self.pit_recall_stamped:.1f}%, "
                f"unstamped {100 * self.pit_recall_unstamped:.1f}%",
                f"predicted pit on non-pit cases: stamped {100 * self.pit_rate_other_stamped:.1f}%"
                f", unstamped {100 * self.pit_rate_other_unstamped:.1f}%",
                f"painting the stamp on: mean P(pit) +{100 * self.pit_prob_shift:.1f} points, "
                f"{100 * self.flip_to_pit:.1f}% of non-pit cases flip to pit",
                f"removing the stamp: {100 * self.flip_from_pit:.1f}% of detected pits are lost",
            ]
        )


def _rate(hits: NDArray[np.bool_], where: NDArray[np.bool_]) -> float:
    return float(hits[where].mean()) if where.any() else float("nan")


def measure_shortcut(
    model: nn.Module, preprocess: Preprocess, samples: Sequence[Sample]
) -> ShortcutReport:
    """Measure the stamp shortcut of a model on generated held-out cases.

    Parameters
    ----------
    model : torch.nn.Module
        A classifier over :data:`~studyhub.demo.synth.CLASS_NAMES`, in eval mode.
    preprocess : callable
        Image -> ``(1, H, W)`` tensor.
    samples : sequence of Sample
        Generated cases, ideally from the ``test`` or ``calibration`` split
        where the stamp is independent of the class. Rates over an empty group
        are NaN.

    Returns
    -------
    ShortcutReport
        The measurements.
    """
    if len(samples) == 0:
        raise InputError("samples is empty; pass generated cases, e.g. generate(400, split='test')")
    labels = np.array([s.label_index for s in samples])
    stamped = np.array([bool(s.metadata["stamp"]) for s in samples])
    predicted = predict_proba(model, preprocess, samples).argmax(axis=1)
    prob_on = predict_proba(model, preprocess, [with_stamp(s, True) for s in samples])
    prob_off = predict_proba(model, preprocess, [with_stamp(s, False) for s in samples])
    is_pit = labels == _PIT
    pit_on = prob_on.argmax(axis=1) == _PIT
    pit_off = prob_off.argmax(axis=1) == _PIT
    return ShortcutReport(
        n=len(samples),
        accuracy=float(np.mean(predicted == labels)),
        pit_recall_stamped=_rate(predicted == _PIT, is_pit & stamped),
        pit_recall_unstamped=_rate(predicted == _PIT, is_pit & ~stamped),
        pit_rate_other_stamped=_rate(predicted == _PIT, ~is_pit & stamped),
        pit_rate_other_unstamped=_rate(predicted == _PIT, ~is_pit & ~stamped),
        pit_prob_shift=float(np.mean(prob_on[:, _PIT] - prob_off[:, _PIT])),
        flip_to_pit=_rate(pit_on, ~is_pit & ~pit_off),
        flip_from_pit=_rate(~pit_off, is_pit & pit_on),
    )
