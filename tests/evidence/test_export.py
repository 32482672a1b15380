"""studyhub export: the tidy analysis data set of a study rated through the service layer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select

from studyhub.evidence.export import ANSWER_COLUMNS, read_tables, tidy_data
from studyhub.store.models import Assignment, Response
from studyhub.store.studies import get_study, registered_protocol_of
from tests.evidence.conftest import STUDY, Rated

SECRETS = ("secret-key", "/data/hospital", "patient_", "dr_")
ARMS = ("ig", "gradcam", "random_map", "randomized_model", "integrated_gradients")


def _tidy(r: Rated, *, unblinded: bool):  # type: ignore[no-untyped-def]
    with r.store.snapshot() as s:
        study = get_study(s, None)
        return tidy_data(s, study, registered_protocol_of(s, study), unblinded=unblinded)


def test_answers_resolve_corrections_and_flag_catch_and_repeat_items(rated: Rated) -> None:
    data = _tidy(rated, unblinded=True)
    a = data.answers
    assert list(a.columns) == list(ANSWER_COLUMNS)
    with rated.store.session() as s:
        kinds = dict(
            s.execute(
                select(Assignment.id, Assignment.kind).where(Assignment.study_id == STUDY)
            ).all()
        )
        responses = s.scalars(select(Response)).all()
        corrected = [r for r in responses if r.supersedes_id is not None]
    analysed = [k for k in kinds.values() if k != "training"]
    # one row per instrument item (3) of every answered, non-training item; no training rows
    assert len(a) == 3 * len(analysed)
    assert set(a["kind"]) == {"read", "catch", "repeat"}
    assert a["catch"].sum() == 3 * sum(k == "catch" for k in analysed)
    assert a["repeat"].sum() == 3 * sum(k == "repeat" for k in analysed)
    assert a.loc[~a["catch"], "catch_passed"].isna().all()
    assert a.loc[a["catch"], "catch_passed"].all()  # every scripted rater obeyed
    # the correction replaced the original answer: its value, flagged, once
    (fix,) = corrected
    rows = a[a["corrected"]]
    assert len(rows) == 3
    assert rows.loc[rows["item"] == "usefulness", "value"].tolist() == [
        float(fix.answers["usefulness"])
    ]
    # numeric coding and original labels
    yes_no = a[a["item"] == "plausible"]
    assert set(zip(yes_no["label"], yes_no["value"], strict=True)) <= {("yes", 1.0), ("no", 0.0)}
    free = a[a["item"] == "comment"]
    assert free["value"].isna().all()
    assert free["label"].str.startswith("note").sum() > 0


def test_unblinded_export_names_arms_and_carries_the_cases(rated: Rated) -> None:
    data = _tidy(rated, unblinded=True)
    assert set(data.answers["arm"]) == set(ARMS[:4])
    assert data.cases is not None
    assert len(data.cases) == rated.n_cases
    assert set(data.cases["truth"]) == {"none", "crack", "scratch", "pit"}
    assert (
        data.cases["correct"].tolist() == (data.cases["truth"] == data.cases["predicted"]).tolist()
    )
    assert set(data.cases["lighting"]) == {"dim", "bright"}  # the protocol's strata
    assert len(data.marks) > 0
    assert set(data.marks["arm"]) <= set(ARMS)


def test_blinded_export_reveals_no_arm_truth_identity_or_file(
    rated: Rated, cli, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "export"
    res = cli("--db", rated.store.url, "export", "--out", str(out), "--format", "both")
    assert res.exit_code == 0, res.stderr
    assert "blinded (monitor view" in res.stdout
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "answers.csv",
        "answers.parquet",
        "data_dictionary.csv",
        "data_dictionary.parquet",
        "marks.csv",
        "marks.parquet",
    ]  # no cases table before unblinding
    cells = {
        str(v)
        for name in ("answers.csv", "marks.csv")
        for v in pd.read_csv(out / name, dtype=str).to_numpy().ravel()
    }
    for secret in (*ARMS, "crack", "scratch", "pit", "none"):
        assert secret not in cells, secret
    text = "".join(p.read_text() for p in out.glob("*.csv"))
    for secret in SECRETS:
        assert secret not in text, secret
    answers = pd.read_csv(out / "answers.csv")
    assert (answers["arm"] == answers["stimulus"]).all()
    # the parquet copy holds the same table
    pq = pd.read_parquet(out / "answers.parquet")
    assert len(pq) == len(answers)
    assert pq["value"].astype(float).fillna(-1).tolist() == answers["value"].fillna(-1).tolist()


def test_dictionary_describes_every_column_and_round_trips(rated: Rated, tmp_path: Path) -> None:
    from studyhub.evidence.export import data_dictionary, write_tables

    data = _tidy(rated, unblinded=True)
    write_tables(data, tmp_path)
    dictionary = data_dictionary(data)
    for name, frame in data.tables().items():
        described = dictionary.loc[dictionary["table"] == name, "column"].tolist()
        assert described == list(frame.columns)
    back = read_tables(tmp_path)
    pd.testing.assert_frame_equal(back["answers"], data.answers, check_dtype=False)
    pd.testing.assert_frame_equal(back["cases"], data.cases, check_dtype=False)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "xml"], "--format 'xml' is not known; use csv, parquet or both"),
        (["--study", "nope"], "no study 'nope' in this database"),
    ],
)
def test_bad_export_options_exit_2_and_write_nothing(
    rated: Rated, cli, tmp_path: Path, args: list[str], message: str
) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "export"
    res = cli("--db", rated.store.url, "export", "--out", str(out), *args)
    assert res.exit_code == 2
    assert message in res.stderr
    assert not out.exists()


def test_export_into_a_file_is_refused(rated: Rated, cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "a-file"
    target.write_text("keep me")
    res = cli("--db", rated.store.url, "export", "--out", str(target))
    assert res.exit_code == 2
    assert "is a file; give a folder" in res.stderr
    assert target.read_text() == "keep me"


def test_make_rated_fixture_is_reused(make_rated: Callable[..., Rated]) -> None:
    r = make_rated(do_close=False)
    data = _tidy(r, unblinded=False)
    assert data.cases is None
    assert data.missing.empty
