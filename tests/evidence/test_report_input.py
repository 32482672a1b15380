"""ReportInput checks: input the report cannot show honestly is refused before anything is written."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from studyhub.errors import DataError, InputError
from studyhub.evidence.report import (
    CalibrationData,
    MRMCData,
    ReportInput,
    roc_points,
    write_report,
)
from tests.evidence.report_fixtures import report_input


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> ReportInput:
    return report_input(tmp_path_factory.mktemp("plan"))


def _refused(inp: ReportInput, out: Path, *needles: str) -> str:
    """write_report raises DataError whose message holds every needle; nothing is written."""
    with pytest.raises(DataError) as err:
        write_report(inp, out)
    message = str(err.value)
    for needle in needles:
        assert needle in message, message
    assert not out.exists()
    return message


def _with_results(inp: ReportInput, **changes: Any) -> ReportInput:
    return dataclasses.replace(inp, results={**inp.results, **changes})


def test_account_name_in_answers_is_refused(full: ReportInput, tmp_path: Path) -> None:
    answers = full.answers.copy()
    answers.loc[answers.index[5], "rater"] = "alice.morgan"
    _refused(
        dataclasses.replace(full, answers=answers),
        tmp_path / "out",
        "'alice.morgan'",
        "in the answers",
        "rater-<id>",
        "studyhub export",
    )


def test_account_name_in_deviations_is_refused(full: ReportInput, tmp_path: Path) -> None:
    devs = [{"kind": "catch_failed", "rater": "bjorn.keller", "case": "case-1", "detail": "x"}]
    _refused(
        _with_results(full, deviations=devs),
        tmp_path / "out",
        "'bjorn.keller'",
        "in the deviations",
        "rater-<id>",
    )


def test_account_name_as_mrmc_reader_is_refused(full: ReportInput, tmp_path: Path) -> None:
    assert full.mrmc is not None
    roc = full.mrmc.roc.assign(reader=full.mrmc.roc["reader"].replace("rater-2", "chen.wei"))
    _refused(
        dataclasses.replace(full, mrmc=MRMCData(roc=roc, or_table=full.mrmc.or_table)),
        tmp_path / "out",
        "'chen.wei'",
        "MRMC ROC points",
    )


def test_account_name_in_cue_marks_is_refused(full: ReportInput, tmp_path: Path) -> None:
    assert full.marks is not None
    marks = full.marks.assign(rater=["rater-1", "dana.osei", "rater-2", "rater-4"])
    _refused(dataclasses.replace(full, marks=marks), tmp_path / "out", "'dana.osei'", "cue marks")


def test_missing_answer_column_is_refused(full: ReportInput, tmp_path: Path) -> None:
    _refused(
        dataclasses.replace(full, answers=full.answers.drop(columns=["item_type"])),
        tmp_path / "out",
        "['item_type']",
        "answers frame",
        "studyhub export",
    )


def test_results_without_criteria_are_refused(full: ReportInput, tmp_path: Path) -> None:
    results = {k: v for k, v in full.results.items() if k != "criteria"}
    _refused(
        dataclasses.replace(full, results=results),
        tmp_path / "out",
        "no criteria table",
        "'deviations'",
        "results.json",
    )


def test_montage_before_unblinding_is_refused(full: ReportInput, tmp_path: Path) -> None:
    _refused(
        _with_results(full, unblinded_at=None),
        tmp_path / "out",
        "unblinded_at is empty",
        "only after studyhub analyze unblinds",
    )


def test_montage_that_is_not_png_is_refused(full: ReportInput, tmp_path: Path) -> None:
    montage = (*full.montage, ("ig", b"\xff\xd8\xff\xe0JFIF"))
    _refused(
        dataclasses.replace(full, montage=montage),
        tmp_path / "out",
        "arm 'ig'",
        "not a PNG image",
        "\\xff\\xd8",
        "pass the rendered stimulus PNG bytes",
    )


def test_correlation_without_its_columns_is_refused(full: ReportInput, tmp_path: Path) -> None:
    assert full.metric_correlation is not None
    corr = full.metric_correlation.drop(columns=["mean_rating"])
    _refused(
        dataclasses.replace(full, metric_correlation=corr),
        tmp_path / "out",
        "['mean_rating']",
        "correlation frame",
    )


def test_report_folder_that_is_a_file_is_refused(full: ReportInput, tmp_path: Path) -> None:
    target = tmp_path / "report"
    target.write_text("not a folder")
    with pytest.raises(InputError) as err:
        write_report(full, target)
    assert str(target) in str(err.value) and "pass a folder" in str(err.value)
    assert target.read_text() == "not a folder"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]


def test_calibration_bins_from_cases() -> None:
    cases = pd.DataFrame(
        {"probability": [0.05, 0.15, 0.95, 0.99, 0.55, np.nan], "correct": [0, 0, 1, 1, 1, 1]}
    )
    cal = CalibrationData.from_cases(cases, ece_before=0.2, ece_after=0.1, n_bins=10)
    assert cal.bins["count"].tolist() == [1, 1, 1, 2]  # NaN left out, empty bins left out
    assert cal.bins["observed"].tolist() == [0.0, 0.0, 1.0, 1.0]
    assert cal.bins["mean_predicted"].iloc[-1] == pytest.approx(0.97)


def test_calibration_without_probability_column_is_refused() -> None:
    with pytest.raises(DataError) as err:
        CalibrationData.from_cases(
            pd.DataFrame({"correct": [True]}), ece_before=None, ece_after=None
        )
    assert "['probability']" in str(err.value) and "export the cases" in str(err.value)


def test_roc_points_of_a_perfect_and_a_useless_reader() -> None:
    data = pd.DataFrame(
        {
            "reader": ["rater-1"] * 4 + ["rater-2"] * 4,
            "arm": "ig",
            "truth": [1, 1, 0, 0] * 2,
            "conf": [90, 80, 20, 10, 50, 50, 50, 50],
        }
    )
    roc = roc_points(data, reader="reader", arm="arm", truth="truth", rating="conf")
    perfect = roc[roc["reader"] == "rater-1"][["fpf", "tpf"]].to_numpy().tolist()
    assert [0.0, 1.0] in perfect  # passes through the top-left corner
    assert perfect[0] == [0.0, 0.0] and perfect[-1] == [1.0, 1.0]
    useless = roc[roc["reader"] == "rater-2"][["fpf", "tpf"]].to_numpy().tolist()
    assert useless == [[0.0, 0.0], [1.0, 1.0]]


def test_roc_points_need_both_classes() -> None:
    data = pd.DataFrame({"reader": "rater-1", "arm": "ig", "truth": [1, 1], "conf": [3, 4]})
    with pytest.raises(DataError) as err:
        roc_points(data, reader="reader", arm="arm", truth="truth", rating="conf")
    assert "'rater-1'" in str(err.value) and "2 positive and 0 negative" in str(err.value)
