"""Enrolling cases into a registered study, end to end through the command line."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from studyhub.store.db import open_store
from studyhub.store.models import AuditEvent, Case, ModelVersion, Prediction, Study
from tests.paths import DEMO_PLAN, DEMO_PROTOCOL


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One materialised demo data set for the whole session."""
    return tmp_path_factory.mktemp("studyhub-data")


def _study(tmp_path: Path, **changes: str) -> Path:
    (tmp_path / "protocols").mkdir(exist_ok=True)
    (tmp_path / "analysis").mkdir(exist_ok=True)
    text = DEMO_PROTOCOL.read_text()
    for old, new in changes.items():
        if old not in text:
            raise KeyError(old)
        text = text.replace(old, new)
    path = tmp_path / "protocols" / "study.yaml"
    path.write_text(text)
    (tmp_path / "analysis" / DEMO_PLAN.name).write_text(DEMO_PLAN.read_text())
    return path


def _enrolled(db: str) -> list[str]:
    store = open_store(db, create=False)
    try:
        with store.session() as s:
            return list(
                s.scalars(
                    select(Case.case_key)
                    .where(Case.enrolled.is_(True))
                    .order_by(Case.enrollment_order)
                )
            )
    finally:
        store.dispose()


def test_demo_sample_is_reproducible_diverse_and_meets_quotas(
    cli, tmp_path: Path, data_dir: Path
) -> None:  # type: ignore[no-untyped-def]
    lists = []
    for run in ("a", "b"):
        db = f"sqlite:///{tmp_path / f'{run}.db'}"
        assert cli("--db", db, "register", "--no-preflight", str(DEMO_PROTOCOL)).exit_code == 0
        result = cli("--db", db, "sample", "--data-dir", str(data_dir))
        assert result.exit_code == 0, result.output
        assert "40 cases enrolled" in result.stdout
        assert "Enrichment: 8 misclassified cases of 40 (20.0%; as planned: 0.2 x 40)" in (
            result.stdout
        )
        assert "Enrichment: 4 low-confidence cases of 40 (10.0%; as planned: 0.1 x 40)" in (
            result.stdout
        )
        lists.append(_enrolled(db))
    assert lists[0] == lists[1]
    assert len(set(lists[0])) == 40

    store = open_store(f"sqlite:///{tmp_path / 'a.db'}", create=False)
    try:
        with store.session() as s:
            study = s.get(Study, "inspection_demo")
            assert study is not None and study.state == "enrolling"
            report = next(e for e in s.scalars(select(AuditEvent)) if e.action == "sample").payload
            import json

            rep = json.loads(report)
            assert all(row["sample"] == row["quota"] == 5 for row in rep["strata"])
            assert (
                rep["diversity"]["sample_mean_nn_distance"]
                > rep["diversity"]["random_mean_nn_distance"]
            )
            assert rep["flow"]["assessed"] == 400 and rep["flow"]["enrolled"] == 40
            # the plan's shares, exactly: 0.2 x 40 misclassified, 0.1 x 40 low-confidence
            enrichment = rep["enrichment"]
            assert enrichment["errors"]["planned_count"] == enrichment["errors"]["count"] == 8
            assert enrichment["errors"]["achieved_share"] == 0.2
            assert enrichment["low_confidence"]["planned_count"] == 4
            assert enrichment["low_confidence"]["count"] == 4
            assert rep["notes"] == []
            assert sum(enrichment["errors"]["by_stratum"].values()) == 8
            version = s.scalars(select(ModelVersion)).one()
            assert version.ece_after is not None and version.ece_before is not None
            assert version.ece_after < version.ece_before
            preds = s.scalars(select(Prediction)).all()
            assert len(preds) == 40
            labels = {c.id: c.label for c in s.scalars(select(Case))}
            wrong = [p for p in preds if p.predicted_label != labels[p.case_id]]
            assert len(wrong) == 8  # the stored cases themselves, not only the report
            assert sum(p.probability_calibrated < 0.7 for p in preds) == 4
            assert all(0 < p.probability_calibrated <= 1 for p in preds)
            cases = s.scalars(select(Case)).all()
            assert all(len(c.image_sha256) == 64 for c in cases)
    finally:
        store.dispose()


def test_resampling_is_a_no_op(cli, tmp_path: Path, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    db = f"sqlite:///{tmp_path / 's.db'}"
    cli("--db", db, "register", "--no-preflight", str(DEMO_PROTOCOL))
    first = cli("--db", db, "sample", "--data-dir", str(data_dir))
    again = cli("--db", db, "sample", "--data-dir", str(data_dir))
    assert first.exit_code == again.exit_code == 0
    assert "already enrolled (same draw)" in again.stdout
    assert len(_enrolled(db)) == 40


def test_unmeetable_quota_writes_nothing(cli, tmp_path: Path, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    protocol = _study(
        tmp_path,
        **{"      pit|dim: 5": "      pit|dim: 500", "n_cases: 40": "n_cases: 535"},
    )
    db = f"sqlite:///{tmp_path / 's.db'}"
    # register's pre-flight refuses it before anything is written ...
    refused = cli("--db", db, "register", "--data-dir", str(data_dir), str(protocol))
    assert refused.exit_code == 2
    assert "stratum 'pit|dim' needs 500 but only" in refused.stderr
    assert not (tmp_path / "s.db").exists()
    # ... and sample, the same check, still refuses it when the pre-flight was skipped
    assert cli("--db", db, "register", "--no-preflight", str(protocol)).exit_code == 0
    result = cli("--db", db, "sample", "--data-dir", str(data_dir))
    assert result.exit_code == 2
    assert "stratum 'pit|dim' needs 500 but only" in result.stderr
    assert _enrolled(db) == []
    assert "registered" in cli("--db", db, "status").stdout


def test_enrichment_the_pool_cannot_give_is_refused_and_nothing_written(
    cli, tmp_path: Path, data_dir: Path
) -> None:  # type: ignore[no-untyped-def]
    protocol = _study(tmp_path, **{"    errors: 0.2": "    errors: 0.9"})
    db = f"sqlite:///{tmp_path / 's.db'}"
    expected = "sampling.enrich.errors is 0.9, i.e. 36 of the 40 cases (within one), but at most "
    fix = "lower sampling.enrich.errors to at most "
    # register's pre-flight predicts the pool and refuses it before anything is written ...
    refused = cli("--db", db, "register", "--data-dir", str(data_dir), str(protocol))
    assert refused.exit_code == 2
    assert expected in refused.stderr and fix in refused.stderr
    assert "under the stratum quotas, stratum 'crack|bright' holds " in refused.stderr
    assert not (tmp_path / "s.db").exists()
    # ... and sample refuses it with the same message when the pre-flight was skipped
    assert cli("--db", db, "register", "--no-preflight", str(protocol)).exit_code == 0
    result = cli("--db", db, "sample", "--data-dir", str(data_dir))
    assert result.exit_code == 2
    message = refused.stderr[refused.stderr.index(expected) :].split("\n")[0]
    assert message.split("; lower")[0] in " ".join(result.stderr.split())
    assert fix in " ".join(result.stderr.split())
    assert _enrolled(db) == []
    store = open_store(db, create=False)
    try:
        with store.session() as s:
            assert s.scalars(select(Case)).all() == []
            assert s.scalars(select(ModelVersion)).all() == []
            assert [e.action for e in s.scalars(select(AuditEvent))] == ["register"]
    finally:
        store.dispose()
    assert "registered" in cli("--db", db, "status").stdout


def test_prospective_enrollment(cli, tmp_path: Path, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    protocol = _study(
        tmp_path,
        **{
            "design: retrospective": "design: prospective",
            "n_cases: 40": "n_cases: 10",
            "    labels: [none, crack, scratch, pit]\n  stratify": "    labels: [crack, scratch, pit]\n  stratify",
        },
    )
    db = f"sqlite:///{tmp_path / 'p.db'}"
    # before registration there is no study to enroll into
    cli("--db", db, "register", "--no-preflight", str(DEMO_PROTOCOL))
    refused = cli(
        "--db", db, "--actor", "x", "enroll", "--study", "study_x", "--data-dir", str(data_dir)
    )
    assert refused.exit_code == 2 and "no study 'study_x'" in refused.stderr
    fresh = f"sqlite:///{tmp_path / 'q.db'}"
    assert (
        cli("--db", fresh, "enroll", "--data-dir", str(data_dir)).exit_code == 2
    )  # no database yet

    db = fresh
    assert cli("--db", db, "register", str(protocol)).exit_code == 0
    retro = cli("--db", db, "sample", "--data-dir", str(data_dir))
    assert retro.exit_code == 2 and "is prospective" in retro.stderr
    first = cli("--db", db, "enroll", "--limit", "4", "--data-dir", str(data_dir))
    assert first.exit_code == 0, first.output
    assert "enrolled 4 cases (4 of 10)" in first.stdout
    rest = cli("--db", db, "enroll", "--data-dir", str(data_dir))
    assert "enrolled 6 cases (10 of 10)" in rest.stdout
    full = cli("--db", db, "enroll", "--data-dir", str(data_dir))
    assert full.exit_code == 2
    assert "reached its target of 10 enrolled cases" in full.stderr

    store = open_store(db, create=False)
    try:
        with store.session() as s:
            enrolled = s.scalars(
                select(Case).where(Case.enrolled.is_(True)).order_by(Case.enrollment_order)
            ).all()
            assert [c.enrollment_order for c in enrolled] == list(range(1, 11))
            assert all(c.label != "none" for c in enrolled)
            assert all(c.enrolled_at.tzinfo is not None for c in enrolled)
            excluded = s.scalars(select(Case).where(Case.enrolled.is_(False))).all()
            assert excluded and all("none" in (c.exclusion_reason or "") for c in excluded)
            # consecutive: enrolled cases keep manifest order
            keys = [c.case_key for c in enrolled]
            assert keys == sorted(keys, key=lambda k: int(k.rsplit("-", 1)[-1]))
    finally:
        store.dispose()
