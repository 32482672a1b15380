"""Pre-flight: run a protocol against its data source and model before it is locked.

``studyhub validate --preflight PROTOCOL`` and ``studyhub register`` (unless
``--no-preflight``) call :func:`preflight`. It

1. opens the data source (CSV manifest, class folders, DICOM folder or the demo)
   and checks every row as ``sample`` will (columns, labels, files);
2. checks the splits (``sampling.pool_split``, ``model.calibration_split``), the
   eligibility criteria, every sampling quota and ``n_cases``, and the enrichment
   targets (``sampling.enrich``) against the cases that exist;
3. imports the model entry point and runs a small batch of cases through
   ``preprocess`` and the model (finite logits of the right shape, embeddings when
   diversity sampling needs them);
4. builds and runs every arm of the protocol on that batch, by the code path
   ``studyhub explain`` uses (attribution, rendering, narrative; not the faithfulness
   metrics nor the uncertainty map, which only repeat the arm on changed inputs at many
   times its cost);

and reports every problem at once. Each check is the function that ``sample``,
``enroll`` or ``explain`` calls (:mod:`studyhub.cases.pool`,
:func:`~studyhub.cases.eligibility.eligibility_problems`,
:func:`~studyhub.cases.sampling.sample_problems`, :mod:`studyhub.models`,
:func:`~studyhub.explain.compute.compute_stimuli`), so a protocol that passes is
not refused later for a reason these checks cover. What only the whole pool can
show (a NaN for one case out of thousands, the model-dependent strata
``correctness`` and ``confidence_bin`` and the enrichment targets, which need a
prediction of every eligible case and are then computed) is checked as far as the
batch allows.

Nothing is written: no database, no file. The user's module is imported without
writing bytecode; a demo data set that is not yet cached in the data folder is
generated into a temporary folder that is removed when the process ends.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from studyhub.cases.dataset import read_cases
from studyhub.cases.eligibility import apply_eligibility, eligibility_problems
from studyhub.cases.enrichment import planned_counts
from studyhub.cases.layouts import demo_is_materialised
from studyhub.cases.pool import calibration_cases, pool_cases, pool_frame, split_problems
from studyhub.cases.records import CaseRecord, load_image, load_mask
from studyhub.cases.sampling import MODEL_STRATA, sample_problems
from studyhub.errors import InputError
from studyhub.explain.compute import CaseInput, compute_stimuli, mask_label_problem
from studyhub.models import LoadedModel, embed, fit_temperature, load_model, logits, probabilities
from studyhub.models.entry import describe_failure
from studyhub.protocol.load import StudyFiles

__all__ = ["PreflightReport", "Progress", "preflight"]

Progress = Callable[[str], None]
"""Called with a short description of each step as it starts (for a spinner)."""

#: How the pre-flight names the enrichment targets.
_WORDS = {"errors": "misclassified", "low_confidence": "low-confidence"}

#: Cases run through the model and every arm.
BATCH_SIZE = 2


@dataclass
class PreflightReport:
    """What a pre-flight checked, the problems it found and what it could not check.

    Attributes
    ----------
    protocol_path : Path
        The protocol checked.
    checked : list of str
        One line per check that passed, saying what was checked against what.
    problems : list of str
        Each problem found, naming the value and the fix.
    not_checked : list of str
        Checks that could not run because an earlier step failed.
    seconds : float
        Wall-clock time of the whole pre-flight.
    """

    protocol_path: Path
    checked: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    not_checked: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether no problem was found."""
        return not self.problems

    def error(self) -> InputError:
        """Every problem in one message (the error to raise when not :attr:`ok`)."""
        n = len(self.problems)
        lines = [
            f"{self.protocol_path}: the pre-flight check found {n} problem{'' if n == 1 else 's'} "
            "(nothing was written); fix each and run again (studyhub validate --preflight):"
        ]
        lines += ["  - " + p.replace("\n", "\n    ") for p in self.problems]
        lines += [f"  (not checked: {what})" for what in self.not_checked]
        return InputError("\n".join(lines))


@functools.cache
def _scratch_dir() -> Path:
    """A temporary folder for this process's demo data, removed when the process ends."""
    folder = Path(tempfile.mkdtemp(prefix="studyhub-preflight-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


@contextlib.contextmanager
def _no_bytecode() -> Iterator[None]:
    """Import without writing ``__pycache__`` folders next to the user's module."""
    before = sys.dont_write_bytecode
    sys.dont_write_bytecode = True
    try:
        yield
    finally:
        sys.dont_write_bytecode = before


def _shown(keys: list[str], limit: int = 3) -> str:
    text = ", ".join(repr(k) for k in keys[:limit])
    return text + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


class _Preflight:
    """One pre-flight run: each step adds to the report and returns what later steps need."""

    def __init__(
        self, files: StudyFiles, data_dir: Path, progress: Progress, batch_size: int
    ) -> None:
        self.protocol = files.protocol
        self.base = files.protocol_path.parent
        self.data_dir = data_dir
        self.progress = progress
        self.batch_size = batch_size
        self.report = PreflightReport(files.protocol_path)

    # --- the data ---------------------------------------------------------------------

    def data(self) -> list[CaseRecord] | None:
        data = self.protocol.data
        where = "the demo data set" if data.kind == "demo" else f"{data.kind} {data.path!r}"
        self.progress(f"reading {where}")
        cache = None
        if data.kind == "demo":
            cached = demo_is_materialised(data, self.data_dir, 0)
            cache = self.data_dir if cached else _scratch_dir()
        try:
            records = read_cases(data, self.base, cache_dir=cache)
        except InputError as exc:
            self.report.problems.append(f"data: {exc}")
            self.report.not_checked.append(
                "splits, eligibility and sampling quotas, and the model and arms on a batch "
                "(the data source could not be read)"
            )
            return None
        labels = sorted({r.label for r in records})
        self.report.checked.append(
            f"data: {len(records)} cases of {where} read, checksummed and decoded; labels "
            f"found {labels} (data.labels {list(data.labels)})"
        )
        return records

    def cases(self, records: list[CaseRecord]) -> list[CaseRecord] | None:
        """Splits and eligibility; returns the eligible pool (None after a problem)."""
        protocol = self.protocol
        sampling = protocol.sampling
        split_issues = split_problems(protocol, records)
        self.report.problems += split_issues
        calibration_ok = not any(p.startswith("model.calibration_split") for p in split_issues)
        pool = pool_cases(protocol, records)
        problems = eligibility_problems(pool, sampling.eligibility, pool_split=sampling.pool_split)
        self.report.problems += problems
        if not pool or problems:
            return None
        eligible, excluded = apply_eligibility(
            pool, sampling.eligibility, pool_split=sampling.pool_split
        )
        split = "every split" if sampling.pool_split is None else f"split {sampling.pool_split!r}"
        line = f"pool: {len(pool)} cases in {split}, {len(eligible)} eligible"
        if excluded:
            line += f" ({len(excluded)} excluded by sampling.eligibility)"
        fit = calibration_cases(protocol, records)
        if fit and calibration_ok:
            classes = len({r.label for r in fit})
            line += (
                f"; calibration split {protocol.model.calibration_split!r}: {len(fit)} cases of "
                f"{classes} classes"
            )
        self.report.checked.append(line)
        return eligible

    def sampling(
        self, records: list[CaseRecord], eligible: list[CaseRecord], model: LoadedModel | None
    ) -> None:
        protocol = self.protocol
        plan = protocol.sampling
        if protocol.design == "prospective":
            if not eligible:
                self.report.not_checked.append(
                    "enrollment: no eligible case in the data source yet; studyhub enroll "
                    "enrolls them once they are added"
                )
            else:
                self.report.checked.append(
                    f"enrollment: {len(eligible)} eligible cases now, target sampling.n_cases "
                    f"{plan.n_cases}"
                )
            return
        by = [] if plan.stratify is None else list(plan.stratify.by)
        needs_model = [name for name in by if name in MODEL_STRATA]
        targets = planned_counts(plan.enrich, plan.n_cases)
        needs_model += [f"enrich.{name}" for name, count in targets.items() if count is not None]
        probs = None
        if needs_model and eligible:
            if model is None:
                self.report.not_checked.append(
                    f"sampling quotas and enrichment: {needs_model} need the model's predictions"
                )
                return
            probs = self._predict_pool(records, eligible, model, needs_model)
            if probs is None:
                return
        problems = sample_problems(pool_frame(eligible, list(protocol.data.labels), probs), plan)
        self.report.problems += problems
        if problems:
            return
        if plan.stratify is not None and plan.stratify.quotas is not None:
            quotas = plan.stratify.quotas
            what = f"the quotas of {len(quotas)} strata ({' x '.join(by)}) can be met"
        elif plan.stratify is not None:
            what = f"proportional allocation over {' x '.join(by)}"
        else:
            what = "no strata"
        kept = [
            f"{count} {_WORDS[name]} ({getattr(plan.enrich, name):g})"
            for name, count in targets.items()
            if count is not None and probs is not None
        ]
        if kept:
            what += f"; enrichment: {' and '.join(kept)} cases can be drawn with them"
        self.report.checked.append(
            f"sampling: n_cases {plan.n_cases} of {len(eligible)} eligible cases; {what}"
        )

    def _predict_pool(
        self,
        records: list[CaseRecord],
        eligible: list[CaseRecord],
        model: LoadedModel,
        strata: list[str],
    ) -> np.ndarray | None:
        """Calibrated probabilities of every eligible case, as ``sample`` computes them."""
        labels = list(self.protocol.data.labels)
        self.progress(f"predicting {len(eligible)} eligible cases for {strata}")
        try:
            z = logits(
                model,
                [load_image(r) for r in eligible],
                n_classes=len(labels),
                keys=[r.case_key for r in eligible],
            )
            temperature = 1.0
            fit = calibration_cases(self.protocol, records)
            calibrated = {"confidence_bin", "enrich.low_confidence"} & set(strata)
            if calibrated and fit:
                self.progress(f"fitting the temperature on {len(fit)} calibration cases")
                fit_z = logits(
                    model,
                    [load_image(r) for r in fit],
                    n_classes=len(labels),
                    keys=[r.case_key for r in fit],
                )
                temperature = fit_temperature(fit_z, np.array([labels.index(r.label) for r in fit]))
        except InputError as exc:
            self.report.problems.append(str(exc))
            return None
        return probabilities(z, temperature)

    # --- the model and the arms ------------------------------------------------------

    def model(self) -> LoadedModel | None:
        spec = self.protocol.model
        self.progress(f"importing the model entry point {spec.entry_point}")
        weights = self.base / spec.weights if spec.weights else None
        try:
            with _no_bytecode():
                model = load_model(spec.entry_point, weights)
        except InputError as exc:
            self.report.problems.append(str(exc))
            self.report.not_checked.append("the model and the arms on a batch (no model)")
            return None
        self.report.checked.append(
            f"model: {spec.entry_point} imported and loaded (weights SHA-256 "
            f"{model.weights_sha256[:12]}…)"
        )
        return model

    def batch(self, model: LoadedModel, candidates: list[CaseRecord]) -> list[CaseInput] | None:
        """The first few candidates of one image size, through preprocess and the model."""
        first = candidates[0]
        same = [r for r in candidates[1:] if r.shape == first.shape]
        chosen = [first, *same[: self.batch_size - 1]]
        keys = [r.case_key for r in chosen]
        labels = list(self.protocol.data.labels)
        self.progress(f"running {len(chosen)} cases through preprocess and the model")
        try:
            images = [load_image(r) for r in chosen]
            z = logits(model, images, n_classes=len(labels), keys=keys)
            diversity = (
                self.protocol.design == "retrospective"
                and self.protocol.sampling.diversity == "k_center"
            )
            if diversity:
                embed(model, images, keys=keys)
        except InputError as exc:
            self.report.problems.append(str(exc))
            self.report.not_checked.append("the arms (the model failed on the batch)")
            return None
        probs = probabilities(z)
        extra = "; penultimate-layer embeddings for diversity sampling" if diversity else ""
        self.report.checked.append(
            f"batch: cases {_shown(keys)} through preprocess and the model: logits of shape "
            f"{tuple(z.shape)}, all finite{extra}"
        )
        masks = [load_mask(r) for r in chosen]
        unnamed = [
            mask_label_problem(self.protocol, k, m) for k, m in zip(keys, masks, strict=True)
        ]
        if any(unnamed):
            self.report.problems.append(next(p for p in unnamed if p))
            masks = [None] * len(masks)  # every arm would stop at it: check them without masks
        return [
            CaseInput(
                case_key=r.case_key,
                image=image,
                image_sha256=r.image_sha256,
                mask=mask,
                target=int(p.argmax()),
                target_label=labels[int(p.argmax())],
                probability=float(p.max()),
            )
            for r, image, mask, p in zip(chosen, images, masks, probs, strict=True)
        ]

    def arms(self, model: LoadedModel, cases: list[CaseInput]) -> None:
        # The uncertainty map only repeats the arm on noisy copies of the same inputs, at
        # uncertainty_samples times the cost (minutes for large images on a CPU): left out.
        cues = self.protocol.cues.model_copy(update={"show_uncertainty": False})
        protocol = self.protocol.model_copy(update={"cues": cues})
        passed = []
        for i, arm in enumerate(protocol.arms):
            self.progress(f"arm {arm.id} ({arm.method}) on the batch")
            where = f"arms[{i}] (id {arm.id!r}, method {arm.method})"
            try:
                compute_stimuli(
                    protocol=protocol,
                    arm_key=arm.id,
                    method=arm.method,
                    params=arm.params,
                    model=model.module,
                    preprocess=model.preprocess,
                    weights_sha256=model.weights_sha256,
                    entry_point=model.entry_point,
                    cases=cases,
                )
            except InputError as exc:
                self.report.problems.append(f"{where}: {exc}")
            except (Exception, SystemExit) as exc:  # the arm on the user's model; not Ctrl-C
                self.report.problems.append(
                    f"{where} failed on the batch of {len(cases)} cases with "
                    f"{describe_failure(exc)}; check the arm's params and model.target_layer, "
                    "and that the model's forward works with gradients (no .numpy() or "
                    "in-place changes of its input)"
                )
            else:
                passed.append(arm.id)
        if passed:
            self.report.checked.append(
                f"arms: {', '.join(passed)} built, run and rendered on the batch"
            )


def preflight(
    files: StudyFiles,
    *,
    data_dir: Path,
    progress: Progress | None = None,
    batch_size: int = BATCH_SIZE,
) -> PreflightReport:
    """Run a validated protocol against its data source and model; write nothing.

    Parameters
    ----------
    files : StudyFiles
        The protocol and plan, from :func:`~studyhub.protocol.load.load_study`.
    data_dir : Path
        The folder ``sample`` will use for generated data (``--data-dir``): a demo
        data set already cached there is read from it; otherwise one is generated
        into a temporary folder.
    progress : callable, optional
        Called with a short description as each step starts.
    batch_size : int, default 2
        Cases run through the model and every arm.

    Returns
    -------
    PreflightReport
        What was checked, every problem found (``report.ok`` is False when there
        is one; ``report.error()`` is the error to raise) and what could not be
        checked because an earlier step failed.

    Raises
    ------
    InputError
        If ``batch_size`` is not a positive integer. Problems of the protocol, its
        data or its model are returned in the report, not raised.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch_size is {batch_size!r}; pass a positive integer such as 2")
    started = time.perf_counter()
    run = _Preflight(files, Path(data_dir), progress or (lambda _step: None), batch_size)
    records = run.data()
    eligible = run.cases(records) if records else None
    model = run.model()
    if records and eligible is not None:
        run.sampling(records, eligible, model)
    if model is not None and records:
        pool = pool_cases(files.protocol, records)
        cases = run.batch(model, eligible or pool or records)
        if cases is not None:
            run.arms(model, cases)
    run.report.seconds = time.perf_counter() - started
    return run.report
