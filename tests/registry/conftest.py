"""Registry tests that need a size reuse the release tests' fixture (sizes made through the services)."""

from tests.releases.conftest import size  # noqa: F401
