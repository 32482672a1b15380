"""Turning one arm and a batch of cases into finished stimuli (no database here).

For each case: the attribution (raw array and its hash), the attribution
uncertainty, the standard rendering (stimulus, original, overlay layer), the
narrative and the provenance an auditor needs to trace the stimulus back to
the exact model, method, parameters and seed. The quantitative metrics are not
part of a stimulus: :mod:`studyhub.explain.metrics_step` computes them afterwards.
"""

from __future__ import annotations

import hashlib
import io
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import captum
import numpy as np
import torch
from torch import Tensor, nn

from studyhub import __version__
from studyhub.errors import InputError
from studyhub.explain.arms import build_arm
from studyhub.explain.arms._base import Arm
from studyhub.explain.cues import ConfidenceCue
from studyhub.explain.narrative import narrate
from studyhub.explain.render import render_views as render_all
from studyhub.explain.uncertainty import attribution_uncertainty
from studyhub.protocol.schema import Protocol

__all__ = [
    "CaseInput",
    "StimulusOutput",
    "array_bytes",
    "array_from_bytes",
    "attribution_sha256",
    "compute_stimuli",
    "item_seed",
    "mask_label_problem",
    "recompute_attributions",
    "render_views",
]


@dataclass(frozen=True)
class CaseInput:
    """What the computation needs of one enrolled case."""

    case_key: str
    image: np.ndarray  # as loaded, [0, 1]
    image_sha256: str
    mask: np.ndarray | None
    target: int  # predicted class index: the explanation explains the model's decision
    target_label: str
    probability: float  # calibrated probability of the target class


@dataclass
class StimulusOutput:
    """One finished stimulus."""

    case_key: str
    seed: int
    attribution: np.ndarray | None
    attribution_sha256: str | None
    image_png: bytes
    original_png: bytes
    overlay_png: bytes | None
    narrative: str
    metrics: dict[str, Any]
    provenance: dict[str, Any]
    duration_ms: float = 0.0
    flags: list[str] = field(default_factory=list)
    #: The attribution uncertainty drawn as the hatch (when the protocol shows it); not stored.
    uncertainty: np.ndarray | None = None


def item_seed(protocol_seed: int, case_key: str, arm_key: str) -> int:
    """The seed of one stimulus: a pure function of the protocol seed, case and arm."""
    digest = hashlib.sha256(f"{protocol_seed}|{case_key}|{arm_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & (2**63 - 1)


def array_bytes(array: np.ndarray) -> bytes:
    """A float32 array as ``.npy`` bytes (dtype and shape kept, little-endian)."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array, dtype="<f4"), allow_pickle=False)
    return buf.getvalue()


def array_from_bytes(data: bytes) -> np.ndarray:
    """Inverse of :func:`array_bytes`."""
    return np.asarray(np.load(io.BytesIO(data), allow_pickle=False))


def attribution_sha256(array: np.ndarray) -> str:
    """SHA-256 over the shape and the little-endian float32 values."""
    arr = np.ascontiguousarray(array, dtype="<f4")
    digest = hashlib.sha256(f"{arr.shape}".encode())
    digest.update(arr.tobytes())
    return digest.hexdigest()


def _display(image: np.ndarray) -> np.ndarray:
    """The image as the renderer draws it: grayscale (H, W) in [0, 1]."""
    img = np.asarray(image, dtype=np.float64)
    if img.ndim == 3:
        img = img[..., :3] @ np.array([0.299, 0.587, 0.114]) if img.shape[-1] >= 3 else img[..., 0]
    return np.clip(img, 0.0, 1.0)


def mask_label_problem(protocol: Protocol, case_key: str, mask: np.ndarray | None) -> str | None:
    """Why a case's mask cannot be narrated: values that ``data.mask_labels`` does not name.

    Parameters
    ----------
    protocol : Protocol
        The protocol (its ``data.mask_labels``).
    case_key : str
        The case, for the message.
    mask : numpy.ndarray or None
        The case's integer mask (0 is background).

    Returns
    -------
    str or None
        The problem with the values and the fix, or None when every region value
        is named (or there is no mask).
    """
    if mask is None:
        return None
    named = protocol.data.mask_labels
    missing = [int(v) for v in np.unique(mask) if int(v) != 0 and int(v) not in named]
    if not missing:
        return None
    return (
        f"the mask of case {case_key!r} has region value(s) {missing} that data.mask_labels "
        f"({dict(named) or 'empty'}) does not name; name every region value in "
        "data.mask_labels (e.g. 1: crack), or give the cases no masks"
    )


def compute_stimuli(
    *,
    protocol: Protocol,
    arm_key: str,
    method: str,
    params: Mapping[str, Any],
    model: nn.Module,
    preprocess: Callable[[np.ndarray], Tensor],
    weights_sha256: str,
    entry_point: str,
    cases: Sequence[CaseInput],
    device: str = "cpu",
) -> list[StimulusOutput]:
    """Compute every stimulus of ``cases`` under one arm, as one batch.

    The model must be in eval mode and is not modified (the weight-randomized
    control works on a copy). Returns the stimuli in the order of ``cases``.
    The batch's case keys are recorded in each provenance (``batch``): batched
    results equal one-by-one ones only up to floating-point rounding, so a
    bit-for-bit recomputation repeats the same batch.
    """
    if not cases:
        return []
    batch = _Batch.of(protocol, arm_key, method, params, model, preprocess, cases, device)
    arm, seeds, inputs, targets = batch.arm, batch.seeds, batch.inputs, batch.targets
    start = time.perf_counter()
    maps = batch.maps()
    batch_ms = (time.perf_counter() - start) * 1000.0
    uncertainty = None
    if maps is not None and protocol.cues.show_uncertainty:
        uncertainty = (
            attribution_uncertainty(
                arm, inputs, targets, n_samples=protocol.cues.uncertainty_samples, seed=seeds
            )
            .cpu()
            .numpy()
        )
    outputs: list[StimulusOutput] = []
    for i, case in enumerate(cases):
        attr = None if maps is None else maps[i]
        outputs.append(
            _one(
                protocol=protocol,
                arm=arm,
                arm_key=arm_key,
                method=method,
                case=case,
                seed=seeds[i],
                attr=attr,
                unc=None if uncertainty is None else uncertainty[i],
                weights_sha256=weights_sha256,
                entry_point=entry_point,
                device=device,
                share_ms=batch_ms / len(cases),
                batch=[c.case_key for c in cases],
            )
        )
    return outputs


def recompute_attributions(
    *,
    protocol: Protocol,
    arm_key: str,
    method: str,
    params: Mapping[str, Any],
    model: nn.Module,
    preprocess: Callable[[np.ndarray], Tensor],
    cases: Sequence[CaseInput],
    device: str = "cpu",
) -> list[np.ndarray | None]:
    """Only the attributions of a batch, by the same code path as :func:`compute_stimuli`."""
    maps = _Batch.of(protocol, arm_key, method, params, model, preprocess, cases, device).maps()
    return [None] * len(cases) if maps is None else list(maps)


@dataclass(frozen=True)
class _Batch:
    """One arm over one batch of cases: the arm, per-item seeds, inputs and targets."""

    arm: Arm
    seeds: list[int]
    inputs: Tensor
    targets: Tensor

    @classmethod
    def of(
        cls,
        protocol: Protocol,
        arm_key: str,
        method: str,
        params: Mapping[str, Any],
        model: nn.Module,
        preprocess: Callable[[np.ndarray], Tensor],
        cases: Sequence[CaseInput],
        device: str,
    ) -> _Batch:
        arm = build_arm(
            method,
            model,
            dict(params),
            target_layer=protocol.model.target_layer,
            preprocess=preprocess,
        )
        return cls(
            arm=arm,
            seeds=[item_seed(protocol.seed, c.case_key, arm_key) for c in cases],
            inputs=torch.stack([preprocess(c.image) for c in cases]).to(device),
            targets=torch.tensor([c.target for c in cases], device=device),
        )

    def maps(self) -> np.ndarray | None:
        """``(N, H, W)`` attributions summed over channels; None for the no-map control."""
        if not self.arm.produces_map:
            return None
        raw = self.arm.attribute(self.inputs, self.targets, seed=self.seeds)
        return np.asarray(raw.detach().float().sum(dim=1).cpu().numpy())


def render_views(
    protocol: Protocol, image: np.ndarray, attr: np.ndarray | None, unc: np.ndarray | None
) -> tuple[bytes, bytes, bytes | None]:
    """The three PNGs of a stimulus: the stimulus, the plain original and the overlay layer.

    The one rendering of every stimulus, used by ``explain`` and by ``explain --verify``.
    """
    views = render_all(
        _display(image), attr, protocol.rendering, uncertainty=unc, cues=protocol.cues
    )
    return views.stimulus, views.original, views.overlay


def _one(
    *,
    protocol: Protocol,
    arm: Arm,
    arm_key: str,
    method: str,
    case: CaseInput,
    seed: int,
    attr: np.ndarray | None,
    unc: np.ndarray | None,
    weights_sha256: str,
    entry_point: str,
    device: str,
    share_ms: float,
    batch: list[str],
) -> StimulusOutput:
    start = time.perf_counter()
    problem = mask_label_problem(protocol, case.case_key, case.mask)
    if problem is not None:
        raise InputError(problem)
    display = _display(case.image)
    rendering = protocol.rendering
    image_png, original, overlay = render_views(protocol, case.image, attr, unc)
    terms = dict(protocol.data.label_terms)
    cue = ConfidenceCue.from_cues(
        case.target_label, case.probability, protocol.cues, label_terms=terms
    )
    markers = [v for v, n in protocol.data.mask_labels.items() if n in protocol.data.marker_regions]
    region_terms = {v: terms.get(n, n) for v, n in protocol.data.mask_labels.items()}
    story = narrate(
        attr if attr is not None else np.zeros(display.shape),
        case.mask,
        region_terms=region_terms,
        label_terms=terms,
        cue=cue,
        marker_labels=markers,
        uncertainty=unc,
        highlight_percent=rendering.top_k_percent or 10.0,
    )
    values: dict[str, Any] = {}
    if attr is not None:
        values.update(
            {
                "region_shares": story.region_shares,
                "marker_share": story.marker_share,
                "border_share": story.border_share,
                "outside_share": story.outside_share,
                "uncertain_share": story.uncertain_share,
            }
        )
    digest = None if attr is None else attribution_sha256(attr)
    provenance = {
        "studyhub_version": __version__,
        "model": {"entry_point": entry_point, "weights_sha256": weights_sha256},
        "arm": arm_key,
        "method": method,
        "params": dict(arm.params),
        "deterministic": bool(arm.deterministic),
        "target_class": case.target,
        "target_label": case.target_label,
        "seed": seed,
        "device": device,
        "batch": batch,
        "torch": torch.__version__,
        "captum": captum.__version__,
        "python": platform.python_version(),
        "input_image_sha256": case.image_sha256,
        "attribution_sha256": digest,
        "attribution_shape": None if attr is None else list(attr.shape),
        "rendering": rendering.model_dump(mode="json"),
        "cues": protocol.cues.model_dump(mode="json"),
    }
    duration = share_ms + (time.perf_counter() - start) * 1000.0
    provenance["duration_ms"] = round(duration, 3)
    return StimulusOutput(
        case_key=case.case_key,
        seed=seed,
        attribution=attr,
        attribution_sha256=digest,
        image_png=image_png,
        original_png=original,
        overlay_png=overlay,
        narrative=story.text,
        metrics=values,
        provenance=provenance,
        duration_ms=duration,
        flags=list(story.flags),
        uncertainty=unc,
    )
