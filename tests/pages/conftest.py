"""Pages reuse the dataset tests' seeded datasets and the release tests' helpers."""

from tests.datasets.conftest import datasets, public_size  # noqa: F401
from tests.releases.conftest import eager_celery, pat  # noqa: F401
