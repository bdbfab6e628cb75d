"""Settings for pytest: PostgreSQL and Redis from the environment `make test` prepares."""

import os
from pathlib import Path

# Tests must never pick up a running demo's environment file.
os.environ["STAGEGATE_IGNORE_RUN_ENV"] = "1"
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/stagegate")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
# Queues of this test run only: messages left in Redis by another or an earlier run are never consumed.
# Under pytest-xdist each pytest process (gw0, gw1, …) is a run of its own, with its own queues (and database,
# which pytest-django suffixes). Worker subprocesses inherit both names through the environment.
_RUN_ID = os.environ.setdefault("STAGEGATE_TEST_RUN_ID", str(os.getpid()))
_RUN = f"{_RUN_ID}-{os.environ['PYTEST_XDIST_WORKER']}" if os.environ.get("PYTEST_XDIST_WORKER") else _RUN_ID
for _queue in ("default", "training", "generation", "cuda"):
    os.environ[f"STAGEGATE_{_queue.upper()}_QUEUE"] = f"{_queue}-test-{_RUN}"

# One audit signing key for the test run and its worker processes, made on first use (never the demo's).
_AUDIT_KEY = Path(__file__).resolve().parents[2] / ".run" / "test" / "audit-ed25519.pem"
os.environ.setdefault("STAGEGATE_AUDIT_KEY_FILE", str(_AUDIT_KEY))
if not _AUDIT_KEY.exists():
    from releases.audit.signing import key_file_write

    try:
        key_file_write(_AUDIT_KEY)
    except FileExistsError:
        pass  # another process of this run made it

from config.settings.base import *  # noqa: E402, F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed; tests only
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# Each pytest process gets its own test database, so concurrent runs on one server never collide.
DATABASES["default"]["TEST"] = {"NAME": f"test_stagegate_{_RUN_ID}"}  # noqa: F405

# WhiteNoise warns on every request when the static root is missing; tests serve no collected files.
Path(STATIC_ROOT).mkdir(parents=True, exist_ok=True)  # noqa: F405
