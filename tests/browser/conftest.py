"""Browser tests reuse the release tests' partner member and eager Celery."""

from tests.releases.conftest import eager_celery, pat  # noqa: F401

