"""The rating study of tests/rating, reused for the command tests."""

from tests.rating.conftest import make_study  # noqa: F401 - a fixture, imported to share it
