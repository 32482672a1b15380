"""The rating study of tests/rating, reused for the app's tests; raters have not consented yet."""

from collections.abc import Callable

import pytest

from tests.rating.conftest import RatingStudy, make_study  # noqa: F401 - fixture, shared


@pytest.fixture
def rs(make_study: Callable[..., RatingStudy]) -> RatingStudy:  # noqa: F811 - the app's variant
    return make_study(consented=False)
