"""Explaining on a Dask cluster: (arm, batch) tasks that workers compute and never store.

A task carries everything a worker needs: the registered protocol (its
canonical JSON), the arm, the model's entry point, weights file and the SHA-256
of its weights, the batch's cases (image and mask arrays, target, calibrated
probability) and their seeds. The worker loads the model itself, once per
process, and refuses weights whose fingerprint differs from the study's; it
computes the batch with :func:`~studyhub.explain.compute.compute_stimuli`, the
same function and the same batch as a run on one machine, so deterministic arms
give the same bytes. Workers never open the store: the coordinator
(:func:`~studyhub.explain.pipeline.explain_study`) alone writes each result,
skipping stimuli that are already stored, so a retried or duplicated task
changes nothing. A task that raises is retried; a worker that dies mid-task
has its task rescheduled by the Dask scheduler.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from studyhub import __version__
from studyhub.cluster import TASK_RETRIES
from studyhub.errors import DataError, InputError, StudyhubError
from studyhub.explain.compute import CaseInput, StimulusOutput, compute_stimuli, item_seed
from studyhub.protocol.load import canonical_json

if TYPE_CHECKING:
    from distributed import Client, Future

    from studyhub.models import LoadedModel
    from studyhub.protocol.schema import Protocol
    from studyhub.store.models import Arm

__all__ = ["ClusterDispatch", "ExplainTask", "ModelRef", "TaskResult", "explain_task", "run_task"]

#: Tasks in flight per worker thread: enough to keep every worker busy, few enough that
#: the case images of a large study are not all in memory at once.
IN_FLIGHT_PER_THREAD = 2

P = TypeVar("P")


@dataclass(frozen=True)
class ModelRef:
    """How a worker finds the study's model, and the fingerprint its weights must have."""

    entry_point: str
    weights: str | None  # the weights file, as the coordinator resolved it
    weights_sha256: str


@dataclass(frozen=True)
class ExplainTask:
    """One arm over one batch of cases: everything a worker needs, nothing of the store."""

    protocol_json: str
    arm_key: str
    method: str
    params: dict[str, Any]
    model: ModelRef
    cases: list[CaseInput]
    seeds: list[int]
    device: str
    studyhub_version: str = __version__


@dataclass
class TaskResult:
    """What a worker sends back: the batch's stimuli, or the studyhub error that stopped it."""

    outputs: list[StimulusOutput] = field(default_factory=list)
    error: StudyhubError | None = None
    worker: str = ""


def explain_task(
    protocol: Protocol,
    arm: Arm,
    model: LoadedModel,
    cases: list[CaseInput],
    device: str,
) -> ExplainTask:
    """The task of one arm over one batch of cases: the batch a run in-process computes."""
    weights = model.weights_file
    return ExplainTask(
        protocol_json=canonical_json(protocol),
        arm_key=arm.arm_key,
        method=arm.method,
        params=dict(arm.params),
        model=ModelRef(
            entry_point=model.entry_point,
            weights=None if weights is None else str(weights.resolve()),
            weights_sha256=model.weights_sha256,
        ),
        cases=cases,
        seeds=[item_seed(protocol.seed, c.case_key, arm.arm_key) for c in cases],
        device=device,
    )


_MODELS: dict[tuple[str, str | None, str, str], LoadedModel] = {}


def _worker_model(ref: ModelRef, device: str) -> LoadedModel:
    """The study's model in this worker process, loaded once and checked against its hash."""
    from pathlib import Path

    from studyhub.models import load_model

    key = (ref.entry_point, ref.weights, ref.weights_sha256, device)
    if key not in _MODELS:
        weights = Path(ref.weights) if ref.weights is not None else None
        model = load_model(ref.entry_point, weights)
        if model.weights_sha256 != ref.weights_sha256:
            raise DataError(
                f"worker {socket.gethostname()}: model {ref.entry_point!r} loaded weights "
                f"{model.weights_sha256[:12]}…, but the study's model has "
                f"{ref.weights_sha256[:12]}…; give every worker the registered weights "
                f"({ref.weights or 'the ones the entry point ships'})"
            )
        model.module.to(device)
        _MODELS[key] = model
    return _MODELS[key]


def run_task(task: ExplainTask) -> TaskResult:
    """Compute one (arm, batch) task on a worker; pure, never touches the store.

    A studyhub error (bad input, a refused model) comes back in the result, so that
    the coordinator reports it instead of the cluster retrying it; anything else
    raises, and the task is retried.
    """
    import torch

    from studyhub.protocol.schema import Protocol

    worker = socket.gethostname()
    try:
        if task.studyhub_version != __version__:
            raise DataError(
                f"worker {worker} runs studyhub {__version__} but the coordinator runs "
                f"{task.studyhub_version}; install the same studyhub version on every worker"
            )
        if task.device.startswith("cuda") and not torch.cuda.is_available():
            raise InputError(
                f"--device {task.device} was asked for but worker {worker} has no CUDA device; "
                "start the workers on GPU machines or use --device cpu"
            )
        protocol = Protocol.model_validate_json(task.protocol_json)
        seeds = [item_seed(protocol.seed, c.case_key, task.arm_key) for c in task.cases]
        if seeds != task.seeds:
            raise DataError(
                f"worker {worker} derives other seeds than the coordinator for arm "
                f"{task.arm_key!r}; install the same studyhub version on every worker"
            )
        model = _worker_model(task.model, task.device)
        outputs = compute_stimuli(
            protocol=protocol,
            arm_key=task.arm_key,
            method=task.method,
            params=task.params,
            model=model.module,
            preprocess=model.preprocess,
            weights_sha256=model.weights_sha256,
            entry_point=model.entry_point,
            cases=task.cases,
            device=task.device,
        )
    except StudyhubError as exc:
        return TaskResult(error=exc, worker=worker)
    return TaskResult(outputs=outputs, worker=worker)


class ClusterDispatch(Generic[P]):
    """Tasks sent to a Dask cluster, their results handed back as they finish.

    ``P`` is what the coordinator keeps beside each task (its arm and case rows),
    returned with the task's outputs.
    """

    def __init__(self, client: Client) -> None:
        self.client = client
        threads = sum(client.nthreads().values()) or 1
        self.limit = max(2, IN_FLIGHT_PER_THREAD * threads)
        self._pending: dict[Future, P] = {}
        self._sequence = 0

    def submit(self, task: ExplainTask, payload: P) -> Iterator[tuple[P, list[StimulusOutput]]]:
        """Send ``task``; yield the results that finished while the cluster is full."""
        self._sequence += 1
        future = self.client.submit(
            run_task,
            task,
            key=f"studyhub-explain-{task.arm_key}-{self._sequence}-{id(self):x}",
            pure=False,
            retries=TASK_RETRIES,
        )
        self._pending[future] = payload
        while len(self._pending) >= self.limit:
            yield from self._finished()

    def drain(self) -> Iterator[tuple[P, list[StimulusOutput]]]:
        """Yield every remaining result as it finishes."""
        while self._pending:
            yield from self._finished()

    def _finished(self) -> Iterator[tuple[P, list[StimulusOutput]]]:
        from distributed import wait

        done = wait(list(self._pending), return_when="FIRST_COMPLETED").done
        for future in sorted(done, key=lambda f: str(f.key)):
            payload = self._pending.pop(future)
            try:
                result: TaskResult = future.result()
            except BaseException:
                self.cancel()
                raise
            if result.error is not None:
                self.cancel()
                raise result.error
            yield payload, result.outputs

    def cancel(self) -> None:
        """Cancel every task still pending (after an error, or when the coordinator stops)."""
        if self._pending:
            self.client.cancel(list(self._pending))
            self._pending.clear()
