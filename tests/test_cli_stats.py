"""``studyhub stats`` on CSV files: the published references through the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.paths import DATA

REF = DATA / "reference"


def _json(result) -> dict:  # type: ignore[no-untyped-def]
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_icc_matches_shrout_fleiss(cli) -> None:  # type: ignore[no-untyped-def]
    csv = REF / "icc_shrout_fleiss_1979" / "ratings_long.csv"
    res = _json(cli("stats", "icc", str(csv), "--targets", "target", "--raters", "judge", "--json"))
    forms = {row["form"]: row["estimate"] for row in res["table"]}
    # Shrout & Fleiss (1979) Table 4: ICC(1,1) .17, ICC(2,1) .29, ICC(3,1) .71
    assert round(forms["ICC1"], 2) == 0.17
    assert round(forms["ICC2"], 2) == 0.29
    assert round(forms["ICC3"], 2) == 0.71


def test_alpha_matches_krippendorff_2011(cli) -> None:  # type: ignore[no-untyped-def]
    csv = REF / "krippendorff_alpha_2011_4x12" / "ratings_long.csv"
    res = _json(
        cli(
            "stats",
            "alpha",
            str(csv),
            "--units",
            "unit",
            "--raters",
            "observer",
            "--ratings",
            "value",
            "--level",
            "nominal",
            "--n-boot",
            "200",
            "--json",
        )
    )
    # Krippendorff (2011), nominal alpha = .743
    assert round(res["estimate"], 3) == 0.743


def test_mrmc_matches_or_dbm_and_writes_imrmc(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    csv = REF / "vandyke_mrmc_roc" / "ratings_long.csv"
    out = tmp_path / "vandyke.imrmc"
    res = _json(cli("stats", "mrmc", str(csv), "--imrmc-out", str(out), "--json"))
    # OR-DBM MRMC 2.51 on Van Dyke: random readers and cases, F = 4.46, ddf = 15.26, p = 0.0517
    assert round(res["rrrc"]["f_stat"], 2) == 4.46
    assert round(res["rrrc"]["ddf"], 2) == 15.26
    assert round(res["rrrc"]["p_value"], 4) == 0.0517
    assert "BEGIN DATA:" in out.read_text()


def test_missing_column_exits_2_naming_it(cli) -> None:  # type: ignore[no-untyped-def]
    csv = REF / "icc_shrout_fleiss_1979" / "ratings_long.csv"
    result = cli("stats", "icc", str(csv), "--targets", "patient")
    assert result.exit_code == 2
    assert "targets='patient'" in result.stderr and "not in the data frame" in result.stderr


@pytest.mark.parametrize("content", ["", 'a,b\n1,2,3,4\n"unclosed'])
def test_unreadable_csv_exits_2(cli, tmp_path: Path, content: str) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.csv"
    bad.write_text(content)
    result = cli("stats", "icc", str(bad))
    assert result.exit_code == 2
    assert "error:" in result.stderr


def test_missing_file_exits_2(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli("stats", "fleiss", str(tmp_path / "nope.csv"))
    assert result.exit_code == 2
    assert "does not exist" in result.stderr


def _ratings_csv(tmp_path: Path) -> Path:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    rows = []
    for r in range(6):
        rater_effect = rng.normal(0, 0.3)
        for c in range(30):
            case_effect = rng.normal(0, 0.5)
            for arm, eff in {
                "ig": 0.8,
                "gradcam": 0.7,
                "random_map": 0.0,
                "randomized_model": 0.1,
            }.items():
                y = float(
                    np.clip(
                        np.rint(3 + rater_effect + case_effect + eff + rng.normal(0, 0.8)), 1, 5
                    )
                )
                rows.append(
                    {
                        "rater": f"r{r}",
                        "case": f"c{c}",
                        "arm": arm,
                        "measure": "usefulness",
                        "value": y,
                    }
                )
    path = tmp_path / "ratings.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_criteria_of_the_demo_plan_on_a_csv(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from tests.paths import DEMO_PROTOCOL

    csv = _ratings_csv(tmp_path)
    res = _json(cli("stats", "criteria", str(csv), "--protocol", str(DEMO_PROTOCOL), "--json"))
    verdicts = {r["endpoint"]: r["verdict"] for r in res["results"]}
    assert verdicts["ig_vs_random"] == "PASS"
    assert set(verdicts) == {
        "ig_vs_random",
        "gradcam_vs_ig",
        "ig_vs_randomized_bootstrap",
        "usefulness_agreement",
    }
    table = cli("stats", "criteria", str(csv), "--protocol", str(DEMO_PROTOCOL))
    assert table.exit_code == 0 and "PASS" in table.stdout


def test_compare_on_a_csv(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    csv = _ratings_csv(tmp_path)
    res = _json(
        cli(
            "stats", "compare", str(csv), "--rating", "value", "--reference", "random_map", "--json"
        )
    )
    rows = {r["arm"]: r for r in res["contrasts"]}
    assert rows["ig"]["estimate"] > 0.5 and rows["ig"]["reject"]


# --- malformed CSVs: non-finite values are refused with exit 2, naming value, row and fix ---


def _long_csv(tmp_path: Path, kind: str) -> Path:
    """A clean CSV for one subcommand (every command below passes on it)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    if kind == "mrmc":
        rows = [
            {"reader": f"r{r}", "modality": m, "case": f"c{c}", "truth": c % 2}
            for r in range(3)
            for m in ("A", "B")
            for c in range(10)
        ]
    elif kind == "arms":
        rows = [
            {"arm": a, "rater": f"r{r}", "case": f"c{c}"}
            for a in ("control", "ig")
            for r in range(4)
            for c in range(8)
        ]
    else:
        raters = ("a", "b") if kind == "two" else ("a", "b", "c")
        rows = [{"case": f"c{c}", "rater": r} for c in range(10) for r in raters]
    frame = pd.DataFrame(rows).assign(rating=rng.integers(1, 6, len(rows)).astype(float))
    if kind == "correlation":
        frame = frame.assign(metric=rng.random(len(frame)))
    path = tmp_path / f"{kind}.csv"
    frame.to_csv(path, index=False)
    return path


def _spoil(path: Path, column: str, row: int, token: str) -> None:
    """Write ``token`` into ``column`` of spreadsheet row ``row`` (header = row 1)."""
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[row - 1].split(",")
    cells[header.index(column)] = token
    lines[row - 1] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")


# (command and options, CSV kind, column, spreadsheet row, token, expected message part)
NON_FINITE = [
    (["icc"], "three", "rating", 5, "inf", "'rating' has an infinite value (inf at row 5)"),
    (["icc"], "three", "rating", 9, "-inf", "'rating' has an infinite value (-inf at row 9)"),
    (["icc"], "three", "rater", 4, "", "raters column 'rater' has a missing value (row 4)"),
    (["mrmc"], "mrmc", "rating", 7, "inf", "'rating' has an infinite value (inf at row 7)"),
    (["mrmc"], "mrmc", "truth", 3, "nan", "truth column 'truth' has a missing value (row 3)"),
    (["correlation"], "correlation", "metric", 4, "inf", "(inf at row 4)"),
    (["correlation"], "correlation", "rating", 6, "-inf", "(-inf at row 6)"),
    (["alpha", "--units", "case"], "three", "rating", 6, "inf", "(inf at row 6)"),
    (["alpha", "--units", "case"], "three", "rater", 8, "NaN", "'rater' has a missing value"),
    (["compare", "--reference", "control"], "arms", "rating", 9, "-inf", "(-inf at row 9)"),
    (["compare", "--reference", "control"], "arms", "case", 2, "", "'case' has a missing value"),
    (["kappa"], "two", "rating", 6, "inf", "'rating' has an infinite value (inf at row 6)"),
    (["kappa"], "two", "rating", 3, "-Infinity", "(-inf at row 3)"),
    (["fleiss"], "three", "rating", 2, "inf", "(inf at row 2)"),
]


@pytest.mark.parametrize(
    ("command", "kind", "column", "row", "token", "expected"),
    NON_FINITE,
    ids=[f"{c[0][0]}-{c[2]}-{c[4] or 'empty'}" for c in NON_FINITE],
)
def test_non_finite_values_exit_2_naming_value_row_and_fix(  # type: ignore[no-untyped-def]
    cli,
    tmp_path: Path,
    command: list[str],
    kind: str,
    column: str,
    row: int,
    token: str,
    expected: str,
) -> None:
    csv = _long_csv(tmp_path, kind)
    assert cli("stats", command[0], str(csv), *command[1:], "--json").exit_code == 0
    _spoil(csv, column, row, token)
    out = tmp_path / "out.imrmc"
    extra = ["--imrmc-out", str(out)] if command[0] == "mrmc" else []
    result = cli("stats", command[0], str(csv), *command[1:], *extra)
    assert result.exit_code == 2, result.output
    assert expected in result.stderr
    fix = "or drop the row" if token.lower().lstrip("-") in ("inf", "infinity") else "drop the row"
    assert fix in result.stderr
    assert result.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == [csv.name]  # nothing written


def test_many_infinite_ratings_are_counted(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    csv = _long_csv(tmp_path, "three")
    for row in range(2, 10):
        _spoil(csv, "rating", row, "inf")
    result = cli("stats", "icc", str(csv))
    assert result.exit_code == 2
    assert "has 8 infinite values (inf at row 2, inf at row 3, inf at row 4, " in result.stderr
    assert "inf at row 6 and 3 more); every value in 'rating' must be a finite number" in (
        result.stderr
    )


def test_criteria_refuses_an_infinite_value(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from tests.paths import DEMO_PROTOCOL

    csv = _ratings_csv(tmp_path)
    _spoil(csv, "value", 12, "inf")
    result = cli("stats", "criteria", str(csv), "--protocol", str(DEMO_PROTOCOL))
    assert result.exit_code == 2
    assert "value column 'value' has an infinite value (inf at row 12)" in result.stderr
    assert "correct it or drop the row" in result.stderr


# --- output files: checked before any work, refused with exit 2 ---------------------------


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("missing/dir/x.imrmc", "does not exist; create it first (mkdir -p"),
        ("folder", "is a folder; give the path of a file to write"),
        ("file.txt/x.imrmc", "is a file, not a folder; give a path in an existing folder"),
    ],
)
def test_unwritable_imrmc_out_exits_2_before_the_analysis(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path, target: str, expected: str
) -> None:
    (tmp_path / "folder").mkdir()
    (tmp_path / "file.txt").write_text("not a folder")
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    out = tmp_path / target
    csv = REF / "vandyke_mrmc_roc" / "ratings_long.csv"
    result = cli("stats", "mrmc", str(csv), "--imrmc-out", str(out))
    assert result.exit_code == 2, result.output
    assert f"--imrmc-out {str(out)!r}" in result.stderr and expected in result.stderr
    assert result.stdout == ""  # refused before the analysis ran
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before


# --- criteria output: each interval's level and adjustment, population, success rule ------


def test_criteria_names_every_intervals_level_and_population(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from tests.paths import DEMO_PROTOCOL

    csv = _ratings_csv(tmp_path)
    res = _json(cli("stats", "criteria", str(csv), "--protocol", str(DEMO_PROTOCOL), "--json"))
    rows = {r["endpoint"]: r for r in res["results"]}
    assert res["family"] == ["ig_vs_random", "gradcam_vs_ig"]
    primary = rows["ig_vs_random"]
    # two primary comparisons under Holm: Bonferroni-level one-sided 97.5 % lower bounds
    assert (primary["ci_level"], primary["ci_sides"], primary["ci_high"]) == (0.975, 1, None)
    assert primary["ci_adjustment"].startswith("Bonferroni level over 2 primary tests")
    assert primary["population"].startswith("new raters and cases")
    secondary = rows["ig_vs_randomized_bootstrap"]
    assert (secondary["ci_level"], secondary["ci_adjustment"]) == (
        0.95,
        "unadjusted: a secondary endpoint",
    )
    assert "conditional on the raters read" in rows["usefulness_agreement"]["population"]
    table = cli("stats", "criteria", str(csv), "--protocol", str(DEMO_PROTOCOL))
    assert table.exit_code == 0, table.output
    text = " ".join(table.stdout.split())
    for phrase in (
        "holm over 2 primary comparison(s)",
        "- ig_vs_random: one-sided lower bound at 97.5 %, Bonferroni level over 2 primary tests",
        "- ig_vs_randomized_bootstrap: one-sided lower bound at 95 %, unadjusted: a secondary "
        "endpoint; population: new raters and cases (two-way cluster bootstrap",
        "- usefulness_agreement: one-sided lower bound at 95 %, unadjusted: a secondary "
        "endpoint; population: conditional on the raters read",
        f"≥ {primary['ci_low']:.3f}",
        "success rule: every primary endpoint must PASS",
    ):
        assert phrase in text, phrase


def test_compare_fixed_sequence_needs_the_testing_order(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    csv = _ratings_csv(tmp_path)
    common = ["stats", "compare", str(csv), "--rating", "value", "--multiplicity", "fixed_sequence"]
    refused = cli(*common, "--reference", "random_map")
    assert refused.exit_code == 2
    assert "reference='random_map' states no order (the arms would be tested alphabetically" in (
        refused.stderr
    )
    assert "pass contrasts=[(arm, versus), ...] in the planned testing order" in refused.stderr
    res = _json(
        cli(*common, "--contrast", "ig:random_map", "--contrast", "gradcam:random_map", "--json")
    )
    assert [r["contrast"] for r in res["contrasts"]] == ["ig - random_map", "gradcam - random_map"]
    bad = cli(*common, "--contrast", "ig-random_map")
    assert bad.exit_code == 2
    assert "--contrast 'ig-random_map' is not ARM:VERSUS; write the two arms separated by" in (
        bad.stderr
    )


def test_compare_reports_intervals_at_the_confidence_asked(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    csv = _ratings_csv(tmp_path)
    common = ["stats", "compare", str(csv), "--rating", "value", "--reference", "random_map"]
    default = _json(cli(*common, "--json"))
    bound = _json(cli(*common, "--confidence", "0.95", "--json"))
    assert (default["confidence"], default["interval_sides"]) == (pytest.approx(0.9), 2)
    assert (bound["confidence"], bound["interval_sides"]) == (0.95, 1)
    for a, b in zip(default["contrasts"], bound["contrasts"], strict=True):
        assert b["ci_low"] == pytest.approx(a["ci_low"], rel=1e-9)  # same lower limit
        assert b["ci_high"] is None  # no upper limit claimed


# --- arm comparisons: degenerate designs exit 2 naming rows or counts; the model's terms ---


def _arms_frame(tmp_path: Path, change):  # type: ignore[no-untyped-def]
    csv = _long_csv(tmp_path, "arms")
    frame = change(pd.read_csv(csv))
    frame.to_csv(csv, index=False)
    return csv


DEGENERATE_ARMS = [
    (
        "duplicate",
        lambda f: pd.concat([f, f.iloc[[0]]]),
        "1 (rater, case, arm) combination(s) have more than one rating (rows 2, 66; e.g. "
        "rater='r0', case='c0', arm='control'); keep one rating per rater, case and arm",
    ),
    (
        "constant_within_arms",
        lambda f: f.assign(rating=f["arm"].map({"control": 2.0, "ig": 4.0})),
        "rating column 'rating' is constant within each arm of 'arm' ('control': 2, 'ig': 4)",
    ),
    (
        "two_raters",
        lambda f: f[f["rater"].isin(["r0", "r1"])],
        "needs at least 3 raters to estimate how much raters differ in their benefit from arm "
        "to arm, but has 2; add raters, or pass rater_by_arm=False",
    ),
    (
        "one_rater_per_case_arm",
        lambda f: f[
            f["rater"].str[1:].astype(int)
            == (f["case"].str[1:].astype(int) + (f["arm"] == "ig")) % 4
        ],
        "every case x arm cell has one rating only (16 cells), so the case x arm variance "
        "cannot be told apart from the residual variance",
    ),
]


@pytest.mark.parametrize(
    ("change", "expected"),
    [case[1:] for case in DEGENERATE_ARMS],
    ids=[case[0] for case in DEGENERATE_ARMS],
)
def test_compare_refuses_degenerate_designs(cli, tmp_path: Path, change, expected: str) -> None:  # type: ignore[no-untyped-def]
    csv = _arms_frame(tmp_path, change)
    result = cli("stats", "compare", str(csv), "--reference", "control")
    assert result.exit_code == 2, result.output
    assert expected in result.stderr
    assert result.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == [csv.name]  # nothing written


def test_compare_model_terms_from_the_command_line(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    csv = _long_csv(tmp_path, "arms")
    default = _json(cli("stats", "compare", str(csv), "--reference", "control", "--json"))
    assert set(default["variance_components"]) == {
        "rater",
        "case",
        "rater:arm",
        "case:arm",
        "rater:case",
        "residual",
    }
    narrow = _json(
        cli(
            "stats",
            "compare",
            str(csv),
            "--reference",
            "control",
            "--no-rater-by-arm",
            "--no-case-by-arm",
            "--no-rater-by-case",
            "--json",
        )
    )
    assert set(narrow["variance_components"]) == {"rater", "case", "residual"}
    assert narrow["contrasts"][0]["df"] > default["contrasts"][0]["df"]
    wrong = cli(
        "stats",
        "compare",
        str(csv),
        "--reference",
        "control",
        "--method",
        "friedman",
        "--case-by-arm",
    )
    assert wrong.exit_code == 2
    assert "case_by_arm=True applies to method='mixed_model' only (got 'friedman')" in (
        wrong.stderr
    )
