"""The client's end-to-end tests reuse the release tests' actors and helpers."""

from tests.releases.conftest import eager_celery, pat, size  # noqa: F401
