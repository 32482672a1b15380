"""``studyhub stats`` on CSV files: the published references through the command line."""

from __future__ import annotations

import json
from pathlib import Path

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
