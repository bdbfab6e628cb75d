import pytest
from huggingface_hub import close_session

from tests.releases.conftest import eager_celery, pat  # noqa: F401  (notifications in-process; the partner member)


@pytest.fixture(autouse=True)
def _hub_client_sessions_closed():
    # huggingface_hub keeps a global HTTP client whose kept-alive connection holds a live-server request thread,
    # and that thread's database connection, past the test: at the end of the run PostgreSQL then refused to drop
    # the test database ("being accessed by other users") and it was left behind.
    yield
    close_session()
