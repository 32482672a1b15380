"""studyhub analyze: the registered plan applied to a closed study, once unblinded."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from studyhub.errors import AuditChainError, LifecycleError
from studyhub.evidence.analyze import analyze_study
from studyhub.store.models import AnalysisRun, AuditEvent, Study
from tests.evidence.conftest import STUDY, Rated


def _runs(r: Rated) -> int:
    with r.store.session() as s:
        return int(s.scalar(select(func.count(AnalysisRun.id))) or 0)


def test_analyze_unblinds_once_and_reruns_give_identical_results(
    make_rated: Callable[..., Rated],
) -> None:
    r = make_rated(fail_catch=True)
    first = analyze_study(r.store, None, actor="lead", reason="primary analysis")
    again = analyze_study(r.store, None, actor="stat", reason="re-run by the statistician")
    assert first.unblinded_now and not again.unblinded_now
    assert again.results == first.results  # bootstrap seeds come from the protocol
    with r.store.session() as s:
        study = s.get_one(Study, STUDY)
        assert study.state == "analyzed"
        changes = [
            json.loads(p)
            for p in s.scalars(
                select(AuditEvent.payload).where(AuditEvent.action == "state_change")
            )
        ]
        runs = s.scalars(select(AuditEvent.payload).where(AuditEvent.action == "analysis_run"))
        run_events = [json.loads(p) for p in runs]
    unblinding = [c for c in changes if c["to"] == "analyzed"]
    assert unblinding == [{"from": "closed", "to": "analyzed", "unblinding": "primary analysis"}]
    assert [e["reason"] for e in run_events] == ["primary analysis", "re-run by the statistician"]
    res = first.results
    assert res["unblinded_by"] == "lead"
    assert res["unblinding_reason"] == "primary analysis"
    assert res["plan_hash"] == study.plan_hash
    assert len(res["data_digest"]) == 64
    # every endpoint of the plan, in its order, with the criterion text verbatim
    from studyhub.protocol import load_study

    plan = load_study(r.protocol_path).plan
    got = res["criteria"]["results"]
    assert [e["endpoint"] for e in got] == [e.id for e in plan.endpoints]
    assert [e["criterion"] for e in got] == [e.success_criterion for e in plan.endpoints]
    assert [e["primary"] for e in got] == [e.primary for e in plan.endpoints]
    # the strong simulated arm effect of ig over the random map is found
    ig = got[0]
    assert ig["verdict"] == "PASS" and ig["estimate"] > 1
    # the rater who ignored attention checks is listed, and kept (no rule in the demo plan)
    devs = res["deviations"]
    failed = {d["rater"] for d in devs if d["kind"] == "catch_failed"}
    assert len(failed) == 1
    assert res["excluded_raters"] == []
    assert res["flow"]["raters"] == {
        "invited": 6,
        "completed": 6,
        "started": 6,
        "excluded": 0,
        "analysed": 6,
    }
    assert res["free_text"]["comment"]  # counted per arm
    assert set(res["free_text"]["comment"]) <= {"ig", "gradcam", "random_map", "randomized_model"}


def test_plan_rules_exclude_the_rater_who_failed_attention_checks(
    make_rated: Callable[..., Rated], demo_copy: Path
) -> None:
    plan = demo_copy.parent.parent / "analysis" / "inspection_demo.yaml"
    plan.write_text(plan.read_text() + "\ndata_rules:\n  max_catch_failures: 0\n")
    r = make_rated(fail_catch=True)
    res = analyze_study(r.store, None, actor="lead", reason="primary").results
    (excluded,) = res["excluded_raters"]
    assert [d for d in res["deviations"] if d["kind"] == "rater_excluded"] == [
        {
            "kind": "rater_excluded",
            "rater": excluded,
            "case": None,
            "detail": "failed 2 of 2 attention checks (the plan allows 0)",
        }
    ]
    assert res["flow"]["raters"]["analysed"] == 5
    assert {e["n_raters"] for e in res["criteria"]["results"] if e["n_raters"]} == {5}


def test_analyze_refuses_an_open_study_and_writes_nothing(
    make_rated: Callable[..., Rated], cli
) -> None:  # type: ignore[no-untyped-def]
    r = make_rated(do_close=False)
    with pytest.raises(LifecycleError, match="close the study first: studyhub close"):
        analyze_study(r.store, None, actor="lead", reason="too early")
    res = cli("--db", r.store.url, "analyze", "--reason", "too early")
    assert res.exit_code == 2
    assert "cannot analyze: study 'inspection_demo' is rating" in res.stderr
    res = cli("--db", r.store.url, "analyze", "--reason", "  ")
    assert res.exit_code == 2
    assert "needs a reason for the audit log; give --reason" in res.stderr
    assert _runs(r) == 0


@pytest.mark.tampers
def test_analyze_refuses_a_plan_edited_after_registration(rated: Rated, cli) -> None:  # type: ignore[no-untyped-def]
    # lower the agreement threshold in the stored plan, as someone with database access could
    with rated.store.engine.begin() as conn:
        canon = conn.execute(text("SELECT plan_canonical FROM study")).scalar_one()
        conn.execute(
            text("UPDATE study SET plan_canonical = :p"),
            {"p": canon.replace('"threshold":0.4', '"threshold":0.1')},
        )
    with pytest.raises(AuditChainError):
        analyze_study(rated.store, None, actor="lead", reason="primary")
    res = cli("--db", rated.store.url, "analyze", "--reason", "primary")
    assert res.exit_code == 1
    assert "plan" in res.stderr
    assert _runs(rated) == 0
    with rated.store.session() as s:
        assert s.get_one(Study, STUDY).state == "closed"


def test_analyze_command_prints_the_criteria_table_and_deviations(
    make_rated: Callable[..., Rated], cli
) -> None:  # type: ignore[no-untyped-def]
    r = make_rated(fail_catch=True)
    res = cli("--db", r.store.url, "--actor", "lead", "analyze", "--reason", "primary analysis")
    assert res.exit_code == 0, res.stderr
    out = res.stdout
    assert out.startswith("study inspection_demo unblinded and analysed: analysis run 1")
    assert "Success criteria of inspection_demo_sap" in out
    assert "PASS" in out
    assert "The mean usefulness of ig exceeds that of random_map" in out
    assert "2 deviation(s)" in out
    assert "catch_failed" in out
    again = cli("--db", r.store.url, "analyze", "--reason", "again", "--json")
    assert again.exit_code == 0
    assert json.loads(again.stdout)["criteria"] == json.loads(
        json.dumps(analyze_study(r.store, None, actor="x", reason="x").results["criteria"])
    )


def test_stats_criteria_labels_any_plan_but_the_registered_one_exploratory(
    rated: Rated, cli, demo_copy: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    analyze_study(rated.store, None, actor="lead", reason="primary")
    export = tmp_path / "export"
    assert cli("--db", rated.store.url, "export", "--out", str(export)).exit_code == 0
    csv = str(export / "answers.csv")
    base = ("--db", rated.store.url, "stats", "criteria", csv)
    registered = cli(*base, "--protocol", str(demo_copy))
    assert registered.exit_code == 0, registered.stderr
    assert not registered.stdout.startswith("EXPLORATORY")
    assert "(exploratory)" not in registered.stdout
    by_study = cli(*base, "--study", STUDY)
    assert by_study.stdout == registered.stdout
    # lower a threshold in the file after the data are in: every verdict is exploratory
    plan = demo_copy.parent.parent / "analysis" / "inspection_demo.yaml"
    plan.write_text(plan.read_text().replace("threshold: 0.4", "threshold: 0.1"))
    edited = cli(*base, "--protocol", str(demo_copy))
    assert edited.exit_code == 0, edited.stderr
    first = edited.stdout.splitlines()[0]
    assert first.startswith("EXPLORATORY: inspection_demo.yaml is not the registered analysis")
    verdicts = [v for v in ("PASS", "FAIL") if v in edited.stdout]
    assert verdicts
    # the warning, the title, each of the 4 verdicts and the success line
    assert edited.stdout.lower().count("exploratory") >= 7
    assert "exploratory: study success" in edited.stdout
    neither = cli(*base)
    assert neither.exit_code == 2
    assert "needs exactly one of --study" in neither.stderr
