"""The tidy analysis data set read from a study rated through the service layer."""

from __future__ import annotations

from collections.abc import Callable

from studyhub.evidence.export import tidy_data
from studyhub.store.studies import get_study, registered_protocol_of
from tests.evidence.conftest import Rated


def test_smoke(make_rated: Callable[..., Rated]) -> None:
    r = make_rated()
    with r.store.snapshot() as s:
        study = get_study(s, None)
        protocol = registered_protocol_of(s, study)
        data = tidy_data(s, study, protocol, unblinded=True)
    print(data.answers.head(20).to_string())
    print(data.answers["kind"].value_counts())
    print(data.cases)
    print(data.marks.head())
    assert len(data.answers)
