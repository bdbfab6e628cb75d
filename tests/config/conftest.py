"""Config tests that need a size reuse the release tests' fixture."""

from tests.releases.conftest import size  # noqa: F401
