"""Explaining on a Dask cluster: the same stimuli as one process, even when a worker dies."""

from __future__ import annotations

import os
import shutil
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, select

from studyhub.explain.compute import CaseInput, compute_stimuli, item_seed
from studyhub.explain.distributed import ExplainTask, ModelRef, run_task
from studyhub.explain.pipeline import _context, _inputs, _store_batch, explain_study
from studyhub.models import load_model
from studyhub.protocol.load import canonical_json, load_protocol
from studyhub.store.db import Store, open_store
from studyhub.store.models import Arm, AuditEvent, Case, Stimulus
from studyhub.store.verify import verify_store
from tests.explain.test_pipeline import QUOTAS
from tests.paths import DEMO_PLAN, DEMO_PROTOCOL

distributed = pytest.importorskip("distributed")

#: Generous limits that only keep a broken cluster from hanging the suite.
CLUSTER_TIMEOUT = 300

ARMS = """arms:
  - id: ig
    kind: method
    method: integrated_gradients
    params: {n_steps: 8, baseline: black}
  - id: gradcam
    kind: method
    method: gradcam
  - id: smooth
    kind: method
    method: smoothgrad
    params: {nt_samples: 4}
  - id: random_map
    kind: control
    method: random

rendering:"""
BATCH = 2


def _study_files(folder: Path) -> Path:
    """The demo protocol cut to 8 cases x 4 arms (a deterministic and two seeded arms)."""
    text = DEMO_PROTOCOL.read_text()
    start, end = text.index("    quotas:\n"), text.index("  diversity:")
    text = text[:start] + "    quotas:\n" + QUOTAS + "\n" + text[end:]
    text = text.replace("n_cases: 40", "n_cases: 8")
    text = text[: text.index("arms:")] + ARMS + text[text.index("rendering:") + len("rendering:") :]
    (folder / "protocols").mkdir()
    (folder / "analysis").mkdir()
    (folder / "protocols" / "small.yaml").write_text(text)
    plan = DEMO_PLAN.read_text().replace("versus: randomized_model", "versus: random_map")
    (folder / "analysis" / DEMO_PLAN.name).write_text(plan)
    return folder / "protocols" / "small.yaml"


def _main(*args: str) -> int:
    from studyhub.cli import main

    try:
        main(list(args))
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A registered and sampled small study (``template.db``) and its single-process stimuli."""
    folder = tmp_path_factory.mktemp("distributed")
    protocol = _study_files(folder)
    template = folder / "template.db"
    data = folder / "data"
    url = f"sqlite:///{template}"
    assert _main("--db", url, "register", str(protocol)) == 0
    assert _main("--db", url, "sample", "--data-dir", str(data)) == 0
    return {"folder": folder, "protocol": protocol, "template": template, "data": data}


@pytest.fixture(scope="module")
def reference(study: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """The study's stimuli explained in this process, as without a cluster."""
    single = study["folder"] / "single.db"
    shutil.copy(study["template"], single)
    store = open_store(f"sqlite:///{single}", create=False)
    try:
        summary = explain_study(store, None, data_dir=study["data"], actor="test", batch_size=BATCH)
        assert summary.computed == 8 * 4
        return _stored(store)
    finally:
        store.dispose()


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    """A local Dask cluster of two worker processes, one thread each."""
    cluster = distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0"
    )
    with distributed.Client(cluster, timeout=CLUSTER_TIMEOUT) as c:
        c.wait_for_workers(2, timeout=CLUSTER_TIMEOUT)
        yield c
    cluster.close()


def _stored(store: Store) -> dict[tuple[str, str], dict[str, Any]]:
    """Every stored stimulus by (case, arm): its bytes, texts and provenance minus timings."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    with store.session() as s:
        for stim, arm, case in s.execute(
            select(Stimulus, Arm, Case)
            .join(Arm, Arm.id == Stimulus.arm_id)
            .join(Case, Case.id == Stimulus.case_id)
        ):
            provenance = dict(stim.provenance)
            provenance.pop("duration_ms")
            out[(case.case_key, arm.arm_key)] = {
                "attribution": stim.attribution,
                "attribution_sha256": stim.attribution_sha256,
                "image_png": stim.image_png,
                "original_png": stim.original_png,
                "overlay_png": stim.overlay_png,
                "original_raw": stim.original_raw,
                "narrative": stim.narrative,
                "metrics": stim.metrics,
                "seed": stim.seed,
                "provenance": provenance,
            }
    return out


def _counts(url: str) -> tuple[int, int]:
    store = open_store(url, create=False)
    try:
        with store.session() as s:
            return (
                int(s.scalar(select(func.count()).select_from(Stimulus)) or 0),
                int(s.scalar(select(func.count()).select_from(AuditEvent)) or 0),
            )
    finally:
        store.dispose()


@pytest.mark.slow
def test_a_killed_worker_changes_nothing(study, reference, client, store, db_url) -> None:  # type: ignore[no-untyped-def]
    assert _main("--db", db_url, "register", str(study["protocol"])) == 0
    assert _main("--db", db_url, "sample", "--data-dir", str(study["data"])) == 0
    killed: list[tuple[str, list[str]]] = []

    def kill_a_busy_worker(arm: str, done: int, total: int) -> None:
        if killed:
            return
        busy = {addr: keys for addr, keys in client.processing().items() if keys}
        if not busy:
            return
        addr = sorted(busy)[0]
        pid = client.run(os.getpid, workers=[addr])[addr]
        os.kill(pid, signal.SIGKILL)
        killed.append((addr, list(busy[addr])))

    summary = explain_study(
        store,
        None,
        data_dir=study["data"],
        actor="test",
        batch_size=BATCH,
        progress=kill_a_busy_worker,
        client=client,
    )
    # the worker died while a task was assigned to it, and the run still finished
    assert killed and killed[0][1], "no worker was busy when the first batch came back"
    assert summary.computed == 8 * 4
    assert killed[0][0] not in client.scheduler_info()["workers"]
    stored = _stored(store)
    assert set(stored) == set(reference)
    for key, expected in reference.items():
        for field, value in expected.items():
            assert stored[key][field] == value, f"{key}: {field} differs from the single run"
    client.wait_for_workers(2, timeout=CLUSTER_TIMEOUT)


@pytest.mark.slow
def test_a_duplicated_result_is_not_stored_twice(study, client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    shutil.copy(study["template"], tmp_path / "dup.db")
    url = f"sqlite:///{tmp_path / 'dup.db'}"
    store = open_store(url, create=False)
    try:
        explain_study(
            store,
            None,
            data_dir=study["data"],
            actor="t",
            batch_size=4,
            client=client,
        )
        before, events = _counts(url), _stored(store)
        # the coordinator receives the same (arm, batch) result again, as after a retry
        ctx = _context(store, None, study["data"], step="explain")
        arm, chunk = ctx.arms[0], ctx.cases[:BATCH]
        outputs = compute_stimuli(
            protocol=ctx.protocol,
            arm_key=arm.arm_key,
            method=arm.method,
            params=arm.params,
            model=ctx.model.module,
            preprocess=ctx.model.preprocess,
            weights_sha256=ctx.model.weights_sha256,
            entry_point=ctx.model.entry_point,
            cases=_inputs(ctx, chunk),
        )
        assert _store_batch(store, ctx, arm, chunk, outputs, actor="t") == 0
        assert _counts(url) == before
        assert _stored(store) == events
        with store.snapshot() as session:
            assert verify_store(session).ok
    finally:
        store.dispose()


@pytest.mark.slow
def test_cli_workers_equal_a_single_process(study, reference, cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    shutil.copy(study["template"], tmp_path / "cli.db")
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    result = cli(
        "--db", url, "explain", "--data-dir", str(study["data"]), "--batch-size", str(BATCH),
        "--workers", "2",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "computed 32 stimuli" in result.stdout
    store = open_store(url, create=False)
    try:
        assert _stored(store) == reference
    finally:
        store.dispose()


def _refused(study, cli, tmp_path: Path, *options: str):  # type: ignore[no-untyped-def]
    """Run explain with ``options`` on a copy of the sampled study; check nothing was written."""
    shutil.copy(study["template"], tmp_path / "bad.db")
    url = f"sqlite:///{tmp_path / 'bad.db'}"
    before = _counts(url)
    result = cli("--db", url, "explain", "--data-dir", str(study["data"]), *options)
    assert result.exit_code == 2, result.output
    assert _counts(url) == before
    return result


def test_workers_and_scheduler_together_are_refused(study, cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = _refused(study, cli, tmp_path, "--workers", "2", "--scheduler", "tcp://127.0.0.1:1")
    assert "both --scheduler tcp://127.0.0.1:1 and --workers 2" in result.stderr
    assert "not both" in result.stderr


def test_a_scheduler_address_without_a_dask_scheme_is_refused(study, cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = _refused(study, cli, tmp_path, "--scheduler", "http://host:8786")
    assert "'http://host:8786' is not a Dask scheduler address" in result.stderr
    assert "tcp://host:8786" in result.stderr


def test_an_unreachable_scheduler_is_refused(study, cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import dask.config

    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):
        result = _refused(study, cli, tmp_path, "--scheduler", "tcp://127.0.0.1:1")
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:1" in result.stderr
    assert "fix --scheduler" in result.stderr


def test_verify_on_a_cluster_is_refused(study, cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = _refused(study, cli, tmp_path, "--verify", "3", "--workers", "2")
    assert "--verify 3 recomputes stimuli on this machine" in result.stderr
    assert "drop --workers" in result.stderr


def test_workers_without_dask_installed_are_refused(  # type: ignore[no-untyped-def]
    study, cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)
    result = _refused(study, cli, tmp_path, "--workers", "2")
    assert "--workers needs Dask distributed, which is not installed" in result.stderr
    assert "pip install 'studyhub[distributed]'" in result.stderr


def _task(study: dict[str, Any], **changes: Any) -> ExplainTask:
    protocol, _src = load_protocol(study["protocol"])
    model = load_model(protocol.model.entry_point)
    rng = np.random.default_rng(0)
    case = CaseInput(
        case_key="c1",
        image=rng.random((64, 64)),
        image_sha256="0" * 64,
        mask=None,
        target=0,
        target_label=protocol.data.labels[0],
        probability=0.9,
    )
    values: dict[str, Any] = {
        "protocol_json": canonical_json(protocol),
        "arm_key": "gradcam",
        "method": "gradcam",
        "params": {},
        "model": ModelRef(protocol.model.entry_point, None, model.weights_sha256),
        "cases": [case],
        "seeds": [item_seed(protocol.seed, "c1", "gradcam")],
        "device": "cpu",
    }
    values.update(changes)
    return ExplainTask(**values)


def test_a_worker_computes_a_task_without_the_store(study) -> None:  # type: ignore[no-untyped-def]
    result = run_task(_task(study))
    assert result.error is None
    assert [o.case_key for o in result.outputs] == ["c1"]
    assert result.outputs[0].provenance["batch"] == ["c1"]


def test_a_worker_refuses_other_weights(study) -> None:  # type: ignore[no-untyped-def]
    protocol, _src = load_protocol(study["protocol"])
    ref = ModelRef(protocol.model.entry_point, None, "ab" * 32)
    result = run_task(_task(study, model=ref))
    assert result.outputs == [] and result.error is not None
    message = str(result.error)
    assert "but the study's model has abababababab…" in message
    assert "give every worker the registered weights" in message


def test_a_worker_of_another_studyhub_version_refuses(study) -> None:  # type: ignore[no-untyped-def]
    result = run_task(_task(study, studyhub_version="0.0.1"))
    assert result.error is not None
    assert "the coordinator runs 0.0.1" in str(result.error)
    assert "install the same studyhub version on every worker" in str(result.error)


def test_a_worker_without_cuda_refuses_device_cuda(study) -> None:  # type: ignore[no-untyped-def]
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    result = run_task(_task(study, device="cuda"))
    assert result.error is not None
    assert "--device cuda was asked for but worker" in str(result.error)
    assert "use --device cpu" in str(result.error)
