"""The rating study of tests/rating, reused for the app's tests."""

from tests.rating.conftest import make_study, rs  # noqa: F401 - fixtures, imported to share them
