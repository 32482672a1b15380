"""``validate --preflight`` and ``register``'s pre-flight: every problem at once, nothing written.

Each malformed study is a small CSV study in a temporary folder (8x8 images, a
manifest, a user model module written next to them). Every refused command
must exit 2, name the value and the fix, and leave no database file, no row and
no other file behind.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select

from studyhub.store.db import open_store
from studyhub.store.models import AuditEvent, Case, Study
from tests.cases.helpers import write_csv
from tests.paths import DEMO_PLAN, DEMO_PROTOCOL

LABELS = ["none", "crack", "scratch", "pit"]

MODEL = """\
import numpy as np
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, n_out=4):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.head = nn.Linear(4, n_out)

    def forward(self, x):
        h = torch.relu(self.conv(x)).amax(dim=(2, 3))
        return self.head(h)


def preprocess(image):
    return torch.from_numpy(np.asarray(image, dtype=np.float32)).unsqueeze(0)


def load(weights=None):
    torch.manual_seed(0)
    return Net().eval(), preprocess
"""

DATA = """data:
  kind: csv
  path: ../manifest.csv
  labels: [none, crack, scratch, pit]
  mask_column: null

"""

SAMPLING = """sampling:
  n_cases: 4
  pool_split: test
  stratify:
    by: [label]
    quotas: {none: 1, crack: 1, scratch: 1, pit: 1}
  diversity: k_center

"""


class SmallStudy:
    """A small CSV study in ``folder``: protocol, plan, manifest, images and model code."""

    def __init__(self, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.folder = folder
        self.module = f"pf_model_{folder.name.replace('-', '_')}"
        self.protocol = folder / "protocols" / "study.yaml"
        self.db = folder / "studyhub.db"
        self.url = f"sqlite:///{self.db}"
        (folder / "code").mkdir(parents=True)
        monkeypatch.syspath_prepend(str(folder / "code"))
        monkeypatch.chdir(folder)
        self.write_model(MODEL)
        self.write_protocol()
        self.write_manifest()
        (folder / "analysis").mkdir()
        (folder / "analysis" / DEMO_PLAN.name).write_text(DEMO_PLAN.read_text())

    def write_model(self, source: str) -> None:
        (self.folder / "code" / f"{self.module}.py").write_text(source)
        sys.modules.pop(self.module, None)

    def write_protocol(
        self,
        *,
        model: str | None = None,
        sampling: str = SAMPLING,
        data: str = DATA,
        arms: str | None = None,
    ) -> None:
        text = DEMO_PROTOCOL.read_text()
        start, end = text.index("data:\n"), text.index("sampling:\n")
        block = model or (
            f"model:\n  entry_point: {self.module}:load\n  calibration_split: null\n"
            "  target_layer: conv\n\n"
        )
        text = text[:start] + data + block + text[end:]
        start, end = text.index("sampling:\n"), text.index("arms:\n")
        text = text[:start] + sampling + text[end:]
        if arms is not None:
            start, end = text.index("arms:\n"), text.index("rendering:\n")
            text = text[:start] + arms + text[end:]
        self.protocol.parent.mkdir(exist_ok=True)
        self.protocol.write_text(text)

    def write_manifest(
        self,
        *,
        header: tuple[str, ...] = ("image_path", "label", "split", "site"),
        extra: tuple[tuple[str, ...], ...] = (),
    ) -> None:
        images = self.folder / "images"
        images.mkdir(exist_ok=True)
        rng = np.random.default_rng(0)
        rows = []
        for label in LABELS:
            for i, split in enumerate(("test", "test", "train")):
                name = f"images/{label}-{i}.png"
                pixels = rng.integers(0, 256, size=(8, 8), dtype=np.uint8)
                Image.fromarray(pixels).save(self.folder / name)
                rows.append([name, label, split, "north" if i else "south"])
        for row in extra:  # each extra row gets an image of its own
            Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(self.folder / row[0])
            rows.append(list(row))
        write_csv(self.folder / "manifest.csv", list(header), rows)

    def files(self) -> set[str]:
        return {p.relative_to(self.folder).as_posix() for p in self.folder.rglob("*")}


@pytest.fixture
def study(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SmallStudy:
    return SmallStudy(tmp_path / "study", monkeypatch)


def _refused(cli, study: SmallStudy, *phrases: str, command: str = "register") -> str:  # type: ignore[no-untyped-def]
    """Run ``command`` on the study: exit 2, every phrase in the message, nothing written."""
    before = study.files()
    args = ("--db", study.url, "register") if command == "register" else ("validate", "--preflight")
    result = cli(*args, str(study.protocol))
    assert result.exit_code == 2, result.output
    message = result.stderr
    assert message.startswith("error: "), message
    assert "the pre-flight check found" in message and "(nothing was written)" in message
    for phrase in phrases:
        assert phrase in message, (phrase, message)
    assert "Traceback" not in result.output
    assert not study.db.exists()
    assert study.files() == before
    return message


# --- a study that passes ----------------------------------------------------------------


def test_a_good_study_passes_lists_what_was_checked_and_registers(cli, study: SmallStudy) -> None:  # type: ignore[no-untyped-def]
    before = study.files()
    result = cli("validate", "--preflight", str(study.protocol))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert re.search(r"pre-flight OK in \d+\.\d s:", out)
    assert "data: 12 cases of csv '../manifest.csv' read, checksummed and decoded" in out
    assert "pool: 8 cases in split 'test', 8 eligible" in out
    assert f"model: {study.module}:load imported and loaded" in out
    assert "sampling: n_cases 4 of 8 eligible cases; the quotas of 4 strata (label)" in out
    assert "batch: cases 'images/none-0.png', 'images/none-1.png' through preprocess" in out
    assert "arms: ig, gradcam, random_map, randomized_model built, run and rendered" in out
    assert "OK: protocol 'inspection_demo'" in out
    assert study.files() == before  # validate writes nothing, not even __pycache__

    registered = cli("--db", study.url, "register", str(study.protocol))
    assert registered.exit_code == 0, registered.output
    assert "pre-flight OK" in registered.stdout
    assert "study inspection_demo registered" in registered.stdout
    sampled = cli("--db", study.url, "sample", "--data-dir", str(study.folder / "cache"))
    assert sampled.exit_code == 0, sampled.output
    assert "4 cases enrolled" in sampled.stdout


def test_the_demo_protocol_passes_and_registers_writing_only_the_database(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path, demo_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    registered = cli("--db", f"sqlite:///{work / 's.db'}", "register", str(demo_copy))
    assert registered.exit_code == 0, registered.output
    out = registered.stdout
    assert "data: 1200 cases of the demo data set read" in out
    assert "pool: 400 cases in split 'test', 400 eligible; calibration split 'calibration'" in out
    assert "the quotas of 8 strata (label x lighting) can be met" in out
    assert "enrichment: 8 misclassified (0.2) and 4 low-confidence (0.1) cases can be drawn" in out
    assert "penultimate-layer embeddings for diversity sampling" in out
    assert "arms: ig, gradcam, random_map, randomized_model built, run and rendered" in out
    assert out.index("pre-flight OK") < out.index("study inspection_demo registered")
    # the database and nothing else: no ./studyhub-data, the demo went to a temporary folder
    assert sorted(p.name for p in work.iterdir() if not p.name.startswith("s.db-")) == ["s.db"]


# --- the data ---------------------------------------------------------------------------


def test_a_manifest_without_the_image_column(cli, study: SmallStudy) -> None:  # type: ignore[no-untyped-def]
    study.write_manifest(header=("file", "label", "split", "site"))
    message = _refused(cli, study, "data: ", "'image_path'", "file")
    assert "not checked: splits, eligibility and sampling quotas" in message


def test_a_pool_split_no_case_belongs_to(cli, study: SmallStudy) -> None:  # type: ignore[no-untyped-def]
    study.write_protocol(sampling=SAMPLING.replace("pool_split: test", "pool_split: validation"))
    _refused(
        cli,
        study,
        "sampling.pool_split is 'validation' but no case belongs to that split "
        "(the data's splits are ['test', 'train'])",
        "name an existing split or set it to null",
    )


def test_a_calibration_split_no_case_belongs_to(cli, study: SmallStudy) -> None:  # type: ignore[no-untyped-def]
    study.write_protocol(
        model=f"model:\n  entry_point: {study.module}:load\n  calibration_split: calib\n"
        "  target_layer: conv\n\n"
    )
    _refused(
        cli,
        study,
        "model.calibration_split is 'calib' but no case belongs to that split",
        "name an existing split or set it to null",
    )


def test_a_calibration_split_too_small_for_temperature_scaling(cli, study: SmallStudy) -> None:  # type: ignore[no-untyped-def]
    study.write_protocol(
        model=f"model:\n  entry_point: {study.module}:load\n  calibration_split: train\n"
        "  target_layer: conv\n\n"
    )
    _refused(
        cli,
        study,
        "model.calibration_split 'train': temperature scaling needs at least 10 calibration "
        "cases, got 4",
    )


def test_a_label_the_protocol_does_not_know(cli, study: SmallStudy) -> None:  # type: ignore[no-untyped-def]
    study.write_manifest(extra=(("images/odd.png", "dent", "test", "north"),))
    _refused(
        cli,
        study,
        "row 14: label 'dent' is not in data.labels ['none', 'crack', 'scratch', 'pit']",
        "correct the label or add it to data.labels",
    )


def test_an_eligibility_column_the_data_lacks(cli, study: SmallStudy) -> None:  # type: ignore[no-untyped-def]
    study.write_protocol(
        sampling=SAMPLING.replace(
            "  stratify:", "  eligibility:\n    metadata: {lighting: [bright]}\n  stratify:"
        )
    )
    _refused(
        cli,
        study,
        "sampling.eligibility.metadata names column(s) ['lighting'] that no case has",
        "the metadata columns are ['site']",
    )


def test_a_quota_larger_than_the_stratum(cli, study: SmallStudy) -> None:  # type: ignore[no-untyped-def]
    study.write_protocol(
        sampling=SAMPLING.replace("none: 1,", "none: 5,").replace("n_cases: 4", "n_cases: 8")
    )
    _refused(
        cli,
        study,
        "sampling.stratify.quotas cannot be met: stratum 'none' needs 5 but only 2 eligible",
        "lower those quotas, widen eligibility or add cases to the pool",
    )


def test_n_cases_larger_than_the_eligible_pool(cli, study: SmallStudy) -> None:  # type: ignore[no-untyped-def]
    study.write_protocol(sampling="sampling:\n  n_cases: 9\n  pool_split: test\n\n")
    _refused(cli, study, "sampling.n_cases is 9 but only 8 eligible cases exist", "lower n_cases")


def test_an_enrichment_share_the_pool_cannot_give(cli, study: SmallStudy) -> None:  # type: ignore[no-untyped-def]
    # the untrained model is unsure of every case (confidence under 0.7): one low-confidence
    # case in four cannot be drawn, every stratum's quota is filled with them
    study.write_protocol(
        sampling=SAMPLING + "  enrich:\n    low_confidence: 0.25\n    low_confidence_below: 0.7\n\n"
    )
    _refused(
        cli,
        study,
        "sampling.enrich.low_confidence is 0.25, i.e. 1 of the 4 cases (within one), but at "
        "least 4 low-confidence cases must be drawn: stratum 'crack' holds only 0 confident "
        "(calibrated confidence 0.7 or more) cases for its quota of 1",
        "raise sampling.enrich.low_confidence to at least 1 (4 of 4), or lower the quotas",
    )
    # sample, when the pre-flight was skipped, refuses with the same message, writing no case
    assert cli("--db", study.url, "register", "--no-preflight", str(study.protocol)).exit_code == 0
    sampled = cli("--db", study.url, "sample", "--data-dir", str(study.folder / "cache"))
    assert sampled.exit_code == 2
    assert "sampling.enrich.low_confidence is 0.25, i.e. 1 of the 4 cases" in sampled.stderr
    store = open_store(study.url, create=False)
    try:
        with store.session() as s:
            assert s.scalar(select(func.count()).select_from(Case)) == 0
            assert s.scalar(select(Study.state)) == "registered"
    finally:
        store.dispose()


def test_a_stratum_the_data_lacks(cli, study: SmallStudy) -> None:  # type: ignore[no-untyped-def]
    study.write_protocol(sampling=SAMPLING.replace("by: [label]", "by: [lighting]"))
    _refused(cli, study, "sampling.stratify.by names 'lighting'", "use one of label, correctness")


def test_masks_with_region_values_the_protocol_does_not_name(cli, study: SmallStudy) -> None:  # type: ignore[no-untyped-def]
    rows = []
    for label in LABELS:
        for i, split in enumerate(("test", "test", "train")):
            mask = f"images/{label}-{i}-mask.png"
            Image.fromarray(np.full((8, 8), 2, dtype=np.uint8)).save(study.folder / mask)
            rows.append([f"images/{label}-{i}.png", label, mask, split])
    write_csv(study.folder / "manifest.csv", ["image_path", "label", "mask_path", "split"], rows)
    study.write_protocol(data=DATA.replace("  mask_column: null\n", "  mask_labels: {1: crack}\n"))
    message = _refused(
        cli,
        study,
        "found 1 problem",
        "the mask of case 'images/none-0.png' has region value(s) [2] that data.mask_labels "
        "({1: 'crack'}) does not name",
        "name every region value in data.mask_labels",
    )
    assert "arms[" not in message  # reported once, and the arms were checked without masks


# --- the model --------------------------------------------------------------------------


def test_a_missing_entry_point_module(cli, study: SmallStudy) -> None:  # type: ignore[no-untyped-def]
    study.write_protocol(
        model="model:\n  entry_point: no_such_models.cnn:load\n  calibration_split: null\n"
        "  target_layer: conv\n\n"
    )
    message = _refused(
        cli,
        study,
        "model entry point 'no_such_models.cnn:load': cannot import 'no_such_models.cnn'",
        "install the package that provides it or fix model.entry_point",
    )
    assert "not checked: the model and the arms on a batch (no model)" in message


@pytest.mark.parametrize(
    ("change", "phrases"),
    [
        pytest.param(
            lambda src: 'raise ValueError("set CUDA_VISIBLE_DEVICES first")\n' + src,
            ["raised ValueError: set CUDA_VISIBLE_DEVICES first", "fix the module's top-level"],
            id="module-raises-at-import",
        ),
        pytest.param(
            lambda src: src.replace(
                "    torch.manual_seed(0)\n", "    import sys\n    sys.exit(0)\n"
            ),
            [":load' called sys.exit(0) instead of returning", "remove the sys.exit call"],
            id="sys-exit-in-load",
        ),
        pytest.param(
            lambda src: src.replace(
                "    return torch.from_numpy",
                "    raise ValueError(f'expected RGB, got {image.shape}')\n    return torch.from_numpy",
            ),
            [
                "preprocess raised ValueError: expected RGB, got (8, 8) on case 'images/none-0.png'",
                "fix the entry point's preprocess",
            ],
            id="preprocess-raises",
        ),
        pytest.param(
            lambda src: src.replace("return self.head(h)", "return self.head(h) * float('nan')"),
            [
                "returned non-finite logits [nan, nan, nan, nan] for case 'images/none-0.png' "
                "(and 1 more in the same batch)",
                "check its weights for NaN or inf",
            ],
            id="nan-logits",
        ),
        pytest.param(
            lambda src: src.replace(
                "return self.head(h)", "return self.head(h) + float('inf') * (h.sum() > -1)"
            ),
            ["returned non-finite logits [inf, inf, inf, inf] for case 'images/none-0.png'"],
            id="inf-logits",
        ),
        pytest.param(
            lambda src: src.replace("Net().eval()", "Net(n_out=3).eval()"),
            ["returned output of shape (2, 3) for a batch of 2; expected (2, 4)"],
            id="wrong-output-shape",
        ),
    ],
)
def test_entry_points_that_fail_unusually(
    cli, study: SmallStudy, change, phrases: list[str]
) -> None:  # type: ignore[no-untyped-def]
    study.write_model(change(MODEL))
    message = _refused(cli, study, f"'{study.module}:load'", *phrases)
    assert "arms: ig" not in message


def test_validate_preflight_reports_the_same_problems(cli, study: SmallStudy) -> None:  # type: ignore[no-untyped-def]
    study.write_model('raise ValueError("set CUDA_VISIBLE_DEVICES first")\n' + MODEL)
    _refused(cli, study, "raised ValueError: set CUDA_VISIBLE_DEVICES first", command="validate")


def test_an_arm_failing_on_the_batch(cli, study: SmallStudy) -> None:  # type: ignore[no-untyped-def]
    # predictions run without gradients and work; gradient arms fail on the .numpy() call
    study.write_model(
        MODEL.replace(
            "        h = torch.relu(",
            "        x = torch.from_numpy(np.clip(x.numpy(), 0, 1))\n        h = torch.relu(",
        )
    )
    message = _refused(
        cli,
        study,
        "arms[0] (id 'ig', method integrated_gradients) failed on the batch of 2 cases with "
        "RuntimeError: Can't call numpy() on Tensor that requires grad",
        "arms[3] (id 'randomized_model', method randomized_model) failed",
        "check the arm's params and model.target_layer",
    )
    assert "arms[1] (id 'gradcam'" not in message  # the arms that work are not listed


# --- everything at once -----------------------------------------------------------------


def test_every_problem_is_reported_at_once(cli, study: SmallStudy) -> None:  # type: ignore[no-untyped-def]
    study.write_protocol(
        model=f"model:\n  entry_point: {study.module}:load\n  calibration_split: calib\n"
        "  target_layer: features.conv3\n\n",
        # the quotas add up to n_cases (validate checks that), but 'none' has 2 cases, not 5
        sampling=SAMPLING.replace("n_cases: 4", "n_cases: 8").replace("none: 1,", "none: 5,"),
    )
    message = _refused(
        cli,
        study,
        "found 3 problems",
        "model.calibration_split is 'calib' but no case belongs to that split",
        "stratum 'none' needs 5 but only 2 eligible cases exist",
        "arms[1] (id 'gradcam', method gradcam): gradcam layer 'features.conv3' is not in the "
        "model",
    )
    assert message.count("\n  - ") == 3


def test_a_refused_register_adds_no_row_to_an_existing_database(  # type: ignore[no-untyped-def]
    cli, study: SmallStudy, demo_copy: Path
) -> None:
    assert cli("--db", study.url, "register", "--no-preflight", str(demo_copy)).exit_code == 0

    def counts() -> tuple[int, int]:
        store = open_store(study.url, create=False)
        try:
            with store.session() as s:
                studies = s.scalar(select(func.count()).select_from(Study))
                events = s.scalar(select(func.count()).select_from(AuditEvent))
                return int(studies or 0), int(events or 0)
        finally:
            store.dispose()

    before = counts()
    # the same study id: the pre-flight refuses before registration compares anything
    text = study.protocol.read_text()
    study.protocol.write_text(text.replace("pool_split: test", "pool_split: holdout"))
    result = cli("--db", study.url, "register", str(study.protocol))
    assert result.exit_code == 2
    assert "sampling.pool_split is 'holdout' but no case belongs to that split" in result.stderr
    assert counts() == before


# --- skipping the pre-flight ------------------------------------------------------------


def test_no_preflight_registers_and_sample_refuses_with_the_same_message(
    cli, study: SmallStudy
) -> None:  # type: ignore[no-untyped-def]
    study.write_model(MODEL.replace("return self.head(h)", "return self.head(h) * float('nan')"))
    registered = cli("--db", study.url, "register", "--no-preflight", str(study.protocol))
    assert registered.exit_code == 0, registered.output
    assert "pre-flight" not in registered.stdout
    sampled = cli("--db", study.url, "sample", "--data-dir", str(study.folder / "cache"))
    assert sampled.exit_code == 2, sampled.output
    assert "returned non-finite logits [nan, nan, nan, nan] for case 'images/" in sampled.stderr
    assert "IntegrityError" not in sampled.output
    store = open_store(study.url, create=False)
    try:
        with store.session() as s:
            assert s.scalar(select(func.count()).select_from(Case)) == 0
            assert s.scalars(select(Study.state)).one() == "registered"
    finally:
        store.dispose()


def test_sys_exit_in_load_no_longer_makes_sample_exit_0(cli, study: SmallStudy) -> None:  # type: ignore[no-untyped-def]
    study.write_model(
        MODEL.replace("    torch.manual_seed(0)\n", "    import sys\n    sys.exit(0)\n")
    )
    assert cli("--db", study.url, "register", "--no-preflight", str(study.protocol)).exit_code == 0
    sampled = cli("--db", study.url, "sample", "--data-dir", str(study.folder / "cache"))
    assert sampled.exit_code == 2
    assert f"'{study.module}:load' called sys.exit(0) instead of returning" in sampled.stderr
    store = open_store(study.url, create=False)
    try:
        with store.session() as s:
            assert s.scalar(select(func.count()).select_from(Case)) == 0
            assert s.scalars(select(Study.state)).one() == "registered"
    finally:
        store.dispose()


def test_amend_runs_the_preflight_before_the_amendment_is_made(cli, study: SmallStudy) -> None:  # type: ignore[no-untyped-def]
    """An amendment is permanent: a broken amended protocol is refused, nothing recorded."""
    assert cli("--db", study.url, "register", str(study.protocol)).exit_code == 0
    text = study.protocol.read_text()
    study.protocol.write_text(text.replace("pool_split: test", "pool_split: holdout"))
    refused = cli("--db", study.url, "amend", str(study.protocol), "--reason", "use the holdout")
    assert refused.exit_code == 2
    assert "sampling.pool_split is 'holdout' but no case belongs to that split" in refused.stderr
    store = open_store(study.url, create=False)
    try:
        with store.session() as s:
            actions = list(s.scalars(select(AuditEvent.action).order_by(AuditEvent.seq)))
    finally:
        store.dispose()
    assert actions == ["register"]
    study.protocol.write_text(
        text.replace("n_cases: 4", "n_cases: 3").replace("pit: 1}", "pit: 0}")
    )
    amended = cli("--db", study.url, "amend", str(study.protocol), "--reason", "one case fewer")
    assert amended.exit_code == 0, amended.output
    assert "pre-flight OK" in amended.stdout and "amendment 1 recorded" in amended.stdout
