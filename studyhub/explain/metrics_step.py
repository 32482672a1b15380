"""``studyhub explain --metrics``: the quantitative metrics of stored stimuli, after the fact.

Raters never see the metrics, so ``studyhub explain`` leaves them out and this
step computes them later (in states enrolling, rating or closed, before the
analysis), for the analyses that need them. Which metrics and at what sample
counts is the protocol's ``metrics`` section. The step is idempotent: a
stimulus gets only the metric groups it lacks or whose settings changed (an
amendment), and each group records in the stimulus's provenance
(``provenance["metrics"][group]``) the metrics, their settings and the studyhub
version that computed them. Each batch is written in one transaction with its
audit event; the batch's metrics are computed together
(:mod:`studyhub.explain.metrics_batch`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sqlalchemy import select
from torch import Tensor, nn

from studyhub import __version__
from studyhub.errors import InputError
from studyhub.explain.arms import build_arm
from studyhub.explain.compute import CaseInput, array_from_bytes
from studyhub.explain.metrics import (
    pointing_game,
    randomization_rank_correlation,
    relevance_mass,
    top_k_iou,
)
from studyhub.explain.metrics_batch import (
    infidelity_batch,
    perturbation_curves,
    sensitivity_max_batch,
)
from studyhub.explain.pipeline import _Context, _context, _inputs, _same_shape
from studyhub.protocol.metric_settings import MetricPlan
from studyhub.protocol.schema import Protocol
from studyhub.store import lifecycle
from studyhub.store.audit import append_event
from studyhub.store.db import Store
from studyhub.store.models import Arm, Stimulus
from studyhub.store.studies import get_study

__all__ = ["GROUPS", "MetricsSummary", "batch_metrics", "compute_metrics", "wanted_groups"]

#: Metric group -> the metrics it stores (every one, None where it does not apply).
GROUPS: dict[str, tuple[str, ...]] = {
    "curves": ("deletion_auc", "insertion_auc"),
    "infidelity": ("infidelity",),
    "max_sensitivity": ("max_sensitivity",),
    "randomization": ("randomization_spearman",),
    "mask": ("pointing_game", "relevance_mass", "top_k_iou"),
}

#: Gradient methods whose weight-randomized twin is computed for the sanity check.
RANDOMIZABLE = (
    "integrated_gradients",
    "saliency",
    "smoothgrad",
    "gradient_shap",
    "deeplift",
    "gradcam",
    "guided_gradcam",
)


@dataclass
class MetricsSummary:
    """What a metrics run did."""

    study_id: str
    computed: int = 0
    current: int = 0
    per_arm: dict[str, int] = field(default_factory=dict)
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: float = 0.0


def wanted_groups(plan: MetricPlan, protocol: Protocol) -> dict[str, dict[str, Any]]:
    """The metric groups the settings switch on -> the settings each is computed with."""
    out: dict[str, dict[str, Any]] = {}
    if plan.curve_steps > 0:
        out["curves"] = {"steps": plan.curve_steps, "baseline": "black image"}
    if plan.infidelity_samples > 0:
        out["infidelity"] = {
            "samples": plan.infidelity_samples,
            "noise_std": plan.infidelity_noise_std,
        }
    if plan.sensitivity_samples > 0:
        out["max_sensitivity"] = {
            "samples": plan.sensitivity_samples,
            "radius": plan.sensitivity_radius,
        }
    if plan.randomization:
        out["randomization"] = {"absolute": True}
    if plan.mask_metrics:
        out["mask"] = {"top_k_percent": protocol.rendering.top_k_percent or 10.0}
    return out


def _stale(stim: Stimulus, wanted: Mapping[str, dict[str, Any]]) -> list[str]:
    """The wanted groups a stimulus lacks, or holds with other settings."""
    recorded = (stim.provenance or {}).get("metrics") or {}
    return [
        g for g, settings in wanted.items() if (recorded.get(g) or {}).get("settings") != settings
    ]


def compute_metrics(
    store: Store,
    study_id: str | None,
    *,
    data_dir: Path,
    actor: str,
    device: str = "cpu",
    batch_size: int = 16,
    progress: Callable[[str, int, int], None] | None = None,
) -> MetricsSummary:
    """Compute and store the missing or outdated metrics of every stored stimulus.

    Parameters
    ----------
    store : Store
    study_id : str or None
        The study (None: the only one).
    data_dir : Path
        Where generated or cached data live.
    actor : str
        Who runs the step, for the audit log.
    device : str, default "cpu"
    batch_size : int, default 16
        Stimuli per batch (one transaction each).
    progress : callable, optional
        ``progress(arm, done, total)`` after each stored batch, counting that arm's
        stimuli with a map (the ones already current included).

    Returns
    -------
    MetricsSummary

    Raises
    ------
    LifecycleError
        When the study is not enrolling, rating or closed.
    """
    started = time.perf_counter()
    ctx = _context(store, study_id, data_dir, step="compute metrics")
    wanted = wanted_groups(ctx.protocol.metrics.plan(), ctx.protocol)
    summary = MetricsSummary(study_id=ctx.study.id, groups=wanted)
    model = ctx.model.module.to(device)
    by_case = {case.id: (case, pred, record) for case, pred, record in ctx.cases}
    with store.session() as s:
        stimuli = list(
            s.scalars(
                select(Stimulus)
                .where(Stimulus.study_id == ctx.study.id, Stimulus.attribution.is_not(None))
                .order_by(Stimulus.id)
            )
        )
    for arm in ctx.arms:
        mine = [st for st in stimuli if st.arm_id == arm.id and st.case_id in by_case]
        todo = [(st, _stale(st, wanted)) for st in mine]
        todo = [(st, groups) for st, groups in todo if groups]
        summary.per_arm[arm.arm_key] = 0
        summary.current += len(mine) - len(todo)
        finished = len(mine) - len(todo)
        if progress is not None and mine:
            progress(arm.arm_key, finished, len(mine))
        if not todo:
            continue
        for start in range(0, len(todo), batch_size):
            loaded = todo[start : start + batch_size]
            inputs = _inputs(ctx, [by_case[st.case_id] for st, _groups in loaded])
            for group in _same_shape(inputs):
                chunk = [loaded[i] for i in group]
                names = sorted({g for _st, groups in chunk for g in groups}, key=list(GROUPS).index)
                values = batch_metrics(
                    protocol=ctx.protocol,
                    method=arm.method,
                    params=arm.params,
                    model=model,
                    preprocess=ctx.model.preprocess,
                    cases=[inputs[i] for i in group],
                    attributions=np.stack(
                        [array_from_bytes(st.attribution or b"") for st, _groups in chunk]
                    ),
                    seeds=[int(st.seed or 0) for st, _groups in chunk],
                    groups={g: wanted[g] for g in names},
                    device=device,
                )
                _store_metrics(store, ctx, arm, chunk, values, wanted, device, actor=actor)
                summary.computed += len(chunk)
                summary.per_arm[arm.arm_key] += len(chunk)
                finished += len(chunk)
                if progress is not None:
                    progress(arm.arm_key, finished, len(mine))
    summary.seconds = time.perf_counter() - started
    return summary


def batch_metrics(
    *,
    protocol: Protocol,
    method: str,
    params: Mapping[str, Any],
    model: nn.Module,
    preprocess: Callable[[np.ndarray], Tensor],
    cases: Sequence[CaseInput],
    attributions: np.ndarray,
    seeds: Sequence[int],
    groups: Mapping[str, dict[str, Any]],
    device: str = "cpu",
) -> list[dict[str, Any]]:
    """The metrics of ``groups`` for one batch of one arm's stimuli, in the order of ``cases``.

    Parameters
    ----------
    protocol : Protocol
        The protocol (its mask labels and the model's target layer).
    method, params
        The arm's method and parameters, as registered.
    model : torch.nn.Module
        The model, in eval mode, on ``device``.
    preprocess : callable
        The model's preprocessing.
    cases : sequence of CaseInput
        The batch's cases (images of one shape).
    attributions : numpy.ndarray
        ``(N, H, W)`` stored maps of the stimuli.
    seeds : sequence of int
        The stimuli's seeds (each seeds its arm's draws and its perturbations).
    groups : mapping
        Group (:data:`GROUPS`) -> its settings, as :func:`wanted_groups` gives them.
    device : str, default "cpu"

    Returns
    -------
    list of dict
        Per stimulus, metric name -> value (None where the metric does not apply).
    """
    x = torch.stack([preprocess(c.image) for c in cases]).to(device)
    t = torch.tensor([c.target for c in cases], device=device)
    seeds = [int(seed) for seed in seeds]
    maps = attributions
    arm = build_arm(
        method, model, dict(params), target_layer=protocol.model.target_layer, preprocess=preprocess
    )
    out: list[dict[str, Any]] = [{} for _ in cases]

    def explain(inputs: Tensor, targets: Tensor, item_seeds: Sequence[int]) -> Tensor:
        return arm.attribute(inputs, targets, seed=list(item_seeds))

    if "curves" in groups:
        black = preprocess(np.zeros_like(cases[0].image, dtype=np.float32)).to(device)
        steps = int(groups["curves"]["steps"])
        for mode in ("deletion", "insertion"):
            curves = perturbation_curves(model, x, maps, t, mode=mode, steps=steps, baseline=black)
            for values, curve in zip(out, curves, strict=True):
                values[f"{mode}_auc"] = curve.auc
    if "infidelity" in groups:
        settings = groups["infidelity"]
        try:
            inf: list[float | None] = list(
                infidelity_batch(
                    model,
                    explain,
                    x,
                    t,
                    n_perturb_samples=int(settings["samples"]),
                    noise_std=float(settings["noise_std"]),
                    seeds=seeds,
                )
            )
        except InputError:
            inf = [None] * len(cases)
        for values, v in zip(out, inf, strict=True):
            values["infidelity"] = None if v is None else float(v)
    if "max_sensitivity" in groups:
        settings = groups["max_sensitivity"]
        try:
            sens: list[float | None] = list(
                sensitivity_max_batch(
                    explain,
                    x,
                    t,
                    n_perturb_samples=int(settings["samples"]),
                    radius=float(settings["radius"]),
                    seeds=seeds,
                )
            )
        except InputError:
            sens = [None] * len(cases)
        for values, v in zip(out, sens, strict=True):
            values["max_sensitivity"] = None if v is None else float(v)
    if "randomization" in groups:
        twins = _twins(protocol, method, params, model, preprocess, x, t, seeds)
        for k, values in enumerate(out):
            values["randomization_spearman"] = (
                None if twins is None else float(randomization_rank_correlation(maps[k], twins[k]))
            )
    if "mask" in groups:
        top_k = float(groups["mask"]["top_k_percent"])
        for k, (values, case) in enumerate(zip(out, cases, strict=True)):
            regions = [v for v, n in protocol.data.mask_labels.items() if n == case.target_label]
            values.update(_mask_metrics(maps[k], case.mask, regions, top_k))
    return out


def _twins(
    protocol: Protocol,
    method: str,
    params: Mapping[str, Any],
    model: nn.Module,
    preprocess: Callable[[np.ndarray], Tensor],
    x: Tensor,
    t: Tensor,
    seeds: list[int],
) -> np.ndarray | None:
    """The arm's method on a weight-randomized copy of the model (Adebayo et al. 2018)."""
    if method not in RANDOMIZABLE:
        return None
    twin = build_arm(
        "randomized_model",
        model,
        {"base_method": method, **dict(params)},
        target_layer=protocol.model.target_layer,
        preprocess=preprocess,
    )
    return np.asarray(twin.attribute(x, t, seed=seeds).detach().float().sum(dim=1).cpu().numpy())


def _mask_metrics(
    attr: np.ndarray, mask: np.ndarray | None, regions: list[int], top_k: float
) -> dict[str, Any]:
    """Agreement with the predicted class's region; None without a region or positive map."""
    if mask is None or not regions or not np.isin(mask, regions).any():
        return {"pointing_game": None, "relevance_mass": None, "top_k_iou": None}
    if float(np.clip(attr, 0, None).sum()) <= 0:
        return {"pointing_game": None, "relevance_mass": None, "top_k_iou": None}
    return {
        "pointing_game": bool(pointing_game(attr, mask, labels=regions)),
        "relevance_mass": float(relevance_mass(attr, mask, labels=regions)),
        "top_k_iou": float(top_k_iou(attr, mask, percent=top_k, labels=regions)),
    }


def _store_metrics(
    store: Store,
    ctx: _Context,
    arm: Arm,
    chunk: Sequence[tuple[Stimulus, list[str]]],
    values: Sequence[dict[str, Any]],
    wanted: Mapping[str, dict[str, Any]],
    device: str,
    *,
    actor: str,
) -> None:
    computed = sorted({g for _st, groups in chunk for g in groups}, key=list(GROUPS).index)
    with store.write() as s:
        study = get_study(s, ctx.study.id)
        lifecycle.require(study, "compute metrics")
        ids = []
        for (stim, _groups), new in zip(chunk, values, strict=True):
            row = s.get(Stimulus, stim.id)
            if row is None:  # pragma: no cover - stimuli are never deleted
                continue
            record = dict((row.provenance or {}).get("metrics") or {})
            for group in computed:
                record[group] = {
                    "metrics": list(GROUPS[group]),
                    "settings": wanted[group],
                    "studyhub_version": __version__,
                    "device": device,
                }
            # New dicts, not in-place edits, so that the JSON columns are written.
            row.metrics = {**(row.metrics or {}), **new}
            row.provenance = {**(row.provenance or {}), "metrics": record}
            ids.append(row.id)
        append_event(
            s,
            actor=actor,
            action="metrics",
            study_id=study.id,
            payload={
                "arm": arm.arm_key,
                "stimuli": ids,
                "groups": {g: wanted[g] for g in computed},
                "studyhub_version": __version__,
            },
        )
