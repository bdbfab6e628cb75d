"""Settings for pytest: PostgreSQL and Redis from the environment `make test` prepares."""

import os
from pathlib import Path

# Tests must never pick up a running demo's environment file.
os.environ["STAGEGATE_IGNORE_RUN_ENV"] = "1"
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/stagegate")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
# Queues of this test run only: messages left in Redis by another or an earlier run are never consumed.
# Worker subprocesses inherit these through the environment.
_RUN_ID = os.environ.setdefault("STAGEGATE_TEST_RUN_ID", str(os.getpid()))
os.environ.setdefault("STAGEGATE_DEFAULT_QUEUE", f"default-test-{_RUN_ID}")
os.environ.setdefault("STAGEGATE_TRAINING_QUEUE", f"training-test-{_RUN_ID}")
os.environ.setdefault("STAGEGATE_GENERATION_QUEUE", f"generation-test-{_RUN_ID}")
os.environ.setdefault("STAGEGATE_CUDA_QUEUE", f"cuda-test-{_RUN_ID}")

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
