"""Tests of studyhub.stats.imrmc: the iMRMC input format, read and written."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from studyhub.errors import DataError, InputError
from studyhub.stats.imrmc import read_imrmc, write_imrmc
from studyhub.stats.mrmc import mrmc

REF = Path(__file__).parents[1] / "data" / "reference" / "vandyke_mrmc_roc"
COLS = {"reader": "reader", "modality": "modality", "case": "case"}
COLS |= {"truth": "truth", "rating": "rating"}
KEYS = ["reader", "modality", "case"]


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return pd.read_csv(REF / "ratings_long.csv")


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(KEYS).reset_index(drop=True)


def test_round_trip_van_dyke(data: pd.DataFrame, tmp_path: Path) -> None:
    path = write_imrmc(data, tmp_path / "vandyke.imrmc", **COLS)
    text = path.read_text()
    header, body = text.split("BEGIN DATA:\n")
    assert "NR: 5\nN0: 69\nN1: 45\nNM: 2\n" in header
    rows = body.splitlines()
    assert rows[0] == "-1,1,0,0" and rows[113] == "-1,114,0,1"  # truth rows first
    assert len(rows) == 114 + 1140
    back = read_imrmc(path)
    assert list(back.columns) == ["reader", "modality", "case", "truth", "rating"]
    pd.testing.assert_frame_equal(
        _sorted(back), _sorted(data.astype({"rating": float})), check_like=True
    )
    assert back.attrs["imrmc_header"]["N1"] == "45"
    a, b = mrmc(data, **COLS), mrmc(back, **COLS)
    pd.testing.assert_frame_equal(a.auc, b.auc)
    assert a.rrrc.p_value == b.rrrc.p_value


def test_round_trip_text_ids_and_real_scores(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "who": ["reader A", "reader A", "rB", "rB"],
            "arm": ["saliency", "saliency", "saliency", "saliency"],
            "img": ["img-1", "img-2", "img-1", "img-2"],
            "label": [0, 1, 0, 1],
            "conf": [0.1234567890123, 1e-9, -3.5, 72.25],
        }
    )
    path = write_imrmc(
        frame,
        tmp_path / "x.imrmc",
        reader="who",
        modality="arm",
        case="img",
        truth="label",
        rating="conf",
    )
    back = read_imrmc(path)
    assert back["reader"].tolist() == frame["who"].tolist()
    assert back["case"].tolist() == frame["img"].tolist()
    assert back["rating"].tolist() == frame["conf"].tolist()  # exact: repr round-trips
    assert back["truth"].tolist() == [0, 1, 0, 1]


def test_reads_the_didsr_style_with_spaces_and_free_header(tmp_path: Path) -> None:
    # layout of DIDSR/iMRMC standalone_application/FilesTest-iMRMC/test-reorder-data.imrmc:
    # free text header, no counts, spaces around fields, truth modality ignored
    path = tmp_path / "didsr.imrmc"
    path.write_text(
        "Simulated data\nany text: here\n\nBEGIN DATA:\n"
        "-1 , case1 , modality should not , 0\n-1,case2,matter_for_truth,1\n\n"
        " reader 1 ,case1, modality 1 ,0.5\nreader 1,case2,modality 1,2\n"
    )
    back = read_imrmc(path)
    assert back.to_dict("list") == {
        "reader": ["reader 1", "reader 1"],
        "modality": ["modality 1", "modality 1"],
        "case": ["case1", "case2"],
        "truth": [0, 1],
        "rating": [0.5, 2.0],
    }


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("NR: 1\n-1,1,0,0\n", r"has no 'BEGIN DATA:' line"),
        ("BEGIN DATA:\n-1,1,0,0\n1,1,1\n", r"line 3 has 3 field\(s\) \('1,1,1'\)"),
        ("BEGIN DATA:\n-1,1,0,0\n1,1,1,high\n", r"non-numeric score 'high' in data row 2"),
        ("BEGIN DATA:\n-1,1,0,2\n1,1,1,3\n", r"truth of case '1' is not 0 or 1"),
        ("BEGIN DATA:\n-1,1,0,0\n-1,1,0,1\n", r"case '1' has more than one truth row"),
        ("BEGIN DATA:\n-1,1,0,0\n1,2,1,3\n", r"case '2' is read but has no truth row"),
        ("NR: 2\nBEGIN DATA:\n-1,1,0,0\n1,1,1,3\n", r"header says NR: 2 but the data have 1"),
    ],
)
def test_malformed_files_are_refused(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "bad.imrmc"
    path.write_text(body)
    with pytest.raises(DataError, match=message):
        read_imrmc(path)


def test_write_refuses_reserved_reader_and_commas(data: pd.DataFrame, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"reader '-1', which iMRMC reserves for truth rows"):
        write_imrmc(data.assign(reader=data["reader"] - 2), tmp_path / "a.imrmc", **COLS)
    named = data.assign(case="case, " + data["case"].astype(str))
    with pytest.raises(DataError, match=r"case column 'case' has identifier 'case, 1'"):
        write_imrmc(named, tmp_path / "b.imrmc", **COLS)


def test_write_refuses_bad_truth_and_missing_values(data: pd.DataFrame, tmp_path: Path) -> None:
    mixed = data.copy()
    mixed.loc[(mixed["case"] == 4) & (mixed["reader"] == 2), "truth"] = 1
    with pytest.raises(DataError, match=r"truth differs between rows of case '4'"):
        write_imrmc(mixed, tmp_path / "a.imrmc", **COLS)
    holes = data.astype({"rating": float})
    holes.loc[7, "rating"] = float("nan")
    with pytest.raises(DataError, match=r"rating column 'rating' has a missing value \(row 7\)"):
        write_imrmc(holes, tmp_path / "b.imrmc", **COLS)


def test_write_to_an_unwritable_place_is_an_input_error(data: pd.DataFrame, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"cannot write the iMRMC file '.*missing/x\.imrmc' \("):
        write_imrmc(data, tmp_path / "missing" / "x.imrmc", **COLS)
    (tmp_path / "folder").mkdir()
    with pytest.raises(InputError, match=r"give a path in an existing folder you can write to"):
        write_imrmc(data, tmp_path / "folder", **COLS)  # a folder, not a file
    assert [p.name for p in tmp_path.iterdir()] == ["folder"]  # no partial file anywhere
    assert list((tmp_path / "folder").iterdir()) == []
