from tests.releases.conftest import eager_celery, pat  # noqa: F401  (notifications in-process; the partner member)
