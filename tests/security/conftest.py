"""Security tests reuse the release tests' sizes, partners and eager Celery."""

from tests.releases.conftest import eager_celery, pat, size  # noqa: F401
