"""Cross-field checks of protocol and plan values, before anything is locked."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from studyhub.cases.sampling import confidence_bins
from studyhub.errors import ProtocolError
from studyhub.protocol import load_study
from studyhub.protocol.consistency import bin_names


def test_bin_names_are_the_names_sampling_gives() -> None:
    cuts = [0.6, 0.8, 0.95]
    labelled = confidence_bins(pd.Series([0.1, 0.7, 0.9, 0.99, 1.0]), cuts)
    assert sorted(set(labelled)) == bin_names(cuts)


def test_quota_keys_may_name_confidence_bins(demo_copy: Path) -> None:
    text = demo_copy.read_text()
    start, end = text.index("    by: [label, lighting]"), text.index("  diversity:")
    quotas = "".join(f"      {name}: 10\n" for name in bin_names([0.6, 0.8, 0.95]))
    demo_copy.write_text(
        f"{text[:start]}    by: [confidence_bin]\n    quotas:\n{quotas}{text[end:]}"
    )
    assert load_study(demo_copy).protocol.sampling.stratify is not None
    demo_copy.write_text(demo_copy.read_text().replace("0.95-1.00: 10", "0.95-0.99: 10"))
    with pytest.raises(
        ProtocolError, match=r"names confidence_bin '0\.95-0\.99', which never occurs"
    ):
        load_study(demo_copy)


def test_prospective_studies_do_not_draw_by_quotas(demo_copy: Path) -> None:
    text = demo_copy.read_text().replace("design: retrospective", "design: prospective")
    demo_copy.write_text(text.replace("n_cases: 40", "n_cases: 10"))
    assert load_study(demo_copy).protocol.sampling.n_cases == 10
