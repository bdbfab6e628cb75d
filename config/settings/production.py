"""Production: every secret and service must be configured, or the process refuses to start."""

import os

# Production reads only its real environment, never a demo's run-folder env file.
os.environ["STAGEGATE_IGNORE_RUN_ENV"] = "1"

from config.env import ImproperlyConfiguredEnv, database, envbool, envint, envlist, envsecret  # noqa: E402
from config.settings.base import *  # noqa: E402, F403

SECRET_KEY = envsecret("DJANGO_SECRET_KEY")
if len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5:
    raise ImproperlyConfiguredEnv("DJANGO_SECRET_KEY must be at least 50 random characters")

DEBUG = False
ALLOWED_HOSTS = envlist("DJANGO_ALLOWED_HOSTS")
if not ALLOWED_HOSTS:
    raise ImproperlyConfiguredEnv("DJANGO_ALLOWED_HOSTS must list the host names the site is served on")

DATABASES = {"default": database(envsecret("DATABASE_URL"))}
if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    raise ImproperlyConfiguredEnv("DATABASE_URL must point at PostgreSQL in production")

REDIS_URL = envsecret("REDIS_URL")
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL

S3_ENDPOINT_URL = envsecret("S3_ENDPOINT_URL")
S3_BUCKET = envsecret("S3_BUCKET")
S3_ACCESS_KEY_ID = envsecret("S3_ACCESS_KEY_ID")
S3_SECRET_ACCESS_KEY = envsecret("S3_SECRET_ACCESS_KEY")

# Audit checkpoints are signed outside the database's reach, or the trail proves nothing against its operators.
if not STAGEGATE_AUDIT_KEY and not STAGEGATE_AUDIT_KEY_FILE:  # noqa: F405
    raise ImproperlyConfiguredEnv("STAGEGATE_AUDIT_KEY_FILE (or STAGEGATE_AUDIT_KEY) must name the audit signing "
                                  "key; `manage.py audit_key PATH` writes one")
if STAGEGATE_AUDIT_KEY_FILE and not os.access(STAGEGATE_AUDIT_KEY_FILE, os.R_OK):  # noqa: F405
    raise ImproperlyConfiguredEnv(f"STAGEGATE_AUDIT_KEY_FILE: cannot read {STAGEGATE_AUDIT_KEY_FILE}")  # noqa: F405

# ---------------------------------------------------------------------------
# HTTPS and cookies (https://docs.djangoproject.com/en/5.2/howto/deployment/checklist/)
# ---------------------------------------------------------------------------
SECURE_SSL_REDIRECT = envbool("DJANGO_SECURE_SSL_REDIRECT", True)
# Behind a TLS-terminating proxy, set DJANGO_SECURE_PROXY_SSL_HEADER=1 so Django trusts X-Forwarded-Proto.
if envbool("DJANGO_SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = envint("DJANGO_SECURE_HSTS_SECONDS", 365 * 24 * 60 * 60)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
# Signed download URLs must never leak through a Referer header: none leaves the site. Not no-referrer:
# under it browsers send `Origin: null` on every form POST, which CSRF refuses (tests/browser).
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_SECURE = True
CSRF_TRUSTED_ORIGINS = envlist("DJANGO_CSRF_TRUSTED_ORIGINS")
X_FRAME_OPTIONS = "DENY"

# ---------------------------------------------------------------------------
# Second factor for release decisions (releases/governance/second_factor.py)
# ---------------------------------------------------------------------------
STAGEGATE_SECOND_FACTOR = envbool("STAGEGATE_SECOND_FACTOR", True)
