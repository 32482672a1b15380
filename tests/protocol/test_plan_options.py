"""Per-statistic schemas of endpoint options: they follow what the statistics accept."""

from __future__ import annotations

import importlib

import pytest
from pydantic import ValidationError

from studyhub.protocol import Endpoint
from studyhub.protocol.plan import COMPARISON_STATISTICS, CONDITIONAL_STATISTICS
from studyhub.protocol.plan_options import ICC_ALIASES, ICC_FORMS, STATISTIC_OPTIONS


def test_every_statistic_has_a_schema() -> None:
    statistics = Endpoint.model_fields["statistic"].annotation.__args__  # type: ignore[union-attr]
    assert set(STATISTIC_OPTIONS) == set(statistics)


def test_icc_forms_are_the_statistics_forms() -> None:
    stats_icc = importlib.import_module("studyhub.stats.icc")
    assert ICC_FORMS == stats_icc._ICC_FORMS
    assert ICC_ALIASES == stats_icc._ICC_ALIASES


def _endpoint(statistic: str, options: dict[str, object]) -> dict[str, object]:
    comparing = statistic in COMPARISON_STATISTICS
    return {
        "id": "e",
        "primary": statistic not in CONDITIONAL_STATISTICS,
        "description": "an endpoint",
        "measure": "auc" if statistic == "mrmc" else "usefulness",
        "statistic": statistic,
        "comparison": {"arm": "a", "versus": "b"} if comparing else None,
        "hypothesis": {"type": "superiority"}
        if comparing
        else {"type": "agreement", "threshold": 0.5},
        "success_criterion": "a criterion in words",
        "options": options,
    }


@pytest.mark.parametrize(
    ("statistic", "options", "loc", "kind"),
    [
        ("cluster_bootstrap", {"n_boot": 0}, ("options", "n_boot"), "greater_than_equal"),
        ("fleiss_kappa", {"n_boot": 99}, ("options", "n_boot"), "greater_than_equal"),
        ("krippendorff_alpha", {"seed": -1}, ("options", "seed"), "greater_than_equal"),
        ("icc", {"form": "ICC(B,1)"}, ("options", "form"), "value_error"),
        ("mixed_model", {"n_boot": 2000}, ("options", "n_boot"), "extra_forbidden"),
        ("mixed_model", {"alpha": 0.1}, ("options", "alpha"), "extra_forbidden"),
        ("cohen_kappa", {"weights": "cubic"}, ("options", "weights"), "literal_error"),
    ],
)
def test_options_are_checked_with_the_endpoint(
    statistic: str, options: dict[str, object], loc: tuple[str, ...], kind: str
) -> None:
    with pytest.raises(ValidationError) as info:
        Endpoint.model_validate(_endpoint(statistic, options))
    assert [(e["loc"], e["type"]) for e in info.value.errors()] == [(loc, kind)]


def test_icc_aliases_are_accepted_and_kept_as_written() -> None:
    ep = Endpoint.model_validate(_endpoint("icc", {"form": "ICC(A,1)"}))
    assert ep.options == {"form": "ICC(A,1)"}
