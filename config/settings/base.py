"""Settings shared by every environment; with no environment at all they run the local demo.

Every variable read here is listed, with its meaning, in `.env.example`.
"""

import ipaddress
import os
import re
from datetime import timedelta
from pathlib import Path

from celery.schedules import crontab

from config.env import ImproperlyConfiguredEnv, database, envbool, envint, envlist, envstr, load_env_file

BASE_DIR = Path(__file__).resolve().parent.parent.parent
# Everything `make demo` starts or writes lives here (git-ignored).
RUN_DIR = Path(envstr("STAGEGATE_RUN_DIR", str(BASE_DIR / ".run")))

if not envbool("STAGEGATE_IGNORE_RUN_ENV"):
    # Lets operators run `manage.py …` against a running demo with no extra environment.
    load_env_file(RUN_DIR / "stagegate.env")

# ---------------------------------------------------------------------------
# Core
# ---------------------------------------------------------------------------
# Production refuses to start without DJANGO_SECRET_KEY (config/settings/production.py).
SECRET_KEY = envstr("DJANGO_SECRET_KEY", "insecure-local-demo-key-never-use-in-production")
DEBUG = envbool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = envlist("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
SITE_URL = envstr("STAGEGATE_SITE_URL", "http://127.0.0.1:8000")

INSTALLED_APPS = [
    # The admin shows the admin modules config/admin_site.py names (not knox's, which mints others' tokens).
    "config.admin_site.StagegateAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "knox",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "registry",
    "releases",
    "workers",
    "web",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Audit rows name the API token a request acts through; cleared around each request.
    "releases.audit.context.AuditContextMiddleware",
    # request.user.is_verified(): whether this session passed a second factor (approvals need one).
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes requires: turns a locked-out login into its 429 answer.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# ---------------------------------------------------------------------------
# Database: SQLite in the run folder unless DATABASE_URL says otherwise
# https://github.com/jazzband/dj-database-url
# ---------------------------------------------------------------------------
_default_db = f"sqlite:///{RUN_DIR / 'db.sqlite3'}"
DATABASES = {"default": database(envstr("DATABASE_URL", _default_db))}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    RUN_DIR.mkdir(parents=True, exist_ok=True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = RUN_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# ---------------------------------------------------------------------------
# Object storage (any S3 API: SeaweedFS locally, AWS S3 or a SeaweedFS cluster in production)
# ---------------------------------------------------------------------------
S3_ENDPOINT_URL = envstr("S3_ENDPOINT_URL", "http://127.0.0.1:8333")
# The host clients download from; presigned URLs are signed for it. Defaults to the endpoint.
S3_PUBLIC_ENDPOINT_URL = envstr("S3_PUBLIC_ENDPOINT_URL", "")
S3_BUCKET = envstr("S3_BUCKET", "stagegate")
S3_ACCESS_KEY_ID = envstr("S3_ACCESS_KEY_ID", "")
S3_SECRET_ACCESS_KEY = envstr("S3_SECRET_ACCESS_KEY", "")
S3_REGION = envstr("S3_REGION", "us-east-1")
S3_CONNECT_TIMEOUT_S = envint("S3_CONNECT_TIMEOUT_S", 3)
S3_MULTIPART_CHUNK_BYTES = envint("S3_MULTIPART_CHUNK_BYTES", 8 * 1024 * 1024)

# ---------------------------------------------------------------------------
# Celery (JSON only, time-limited; see workers/)
# https://docs.celeryq.dev/en/stable/userguide/configuration.html
# ---------------------------------------------------------------------------
REDIS_URL = envstr("REDIS_URL", "redis://127.0.0.1:6379/0")
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TASK_TIME_LIMIT = envint("CELERY_TASK_TIME_LIMIT_S", 2 * 60 * 60)
CELERY_TASK_SOFT_TIME_LIMIT = CELERY_TASK_TIME_LIMIT - 60
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = envbool("CELERY_TASK_ALWAYS_EAGER", False)
# Redis redelivers an unacknowledged task after this long: it must outlast the longest task.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_TASK_TIME_LIMIT + 10 * 60}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_DEFAULT_QUEUE = envstr("STAGEGATE_DEFAULT_QUEUE", "default")
# Release governance on a clock: embargoed stage changes apply when due; reviews remind daily.
CELERY_BEAT_SCHEDULE = {
    # Emails and webhooks written by decisions (releases/outbox/): sent, and retried, from here.
    "dispatch-outbox": {"task": "releases.tasks.dispatch_outbox_task",
                        "schedule": float(envint("STAGEGATE_OUTBOX_INTERVAL_S", 5))},
    "apply-due-stage-changes": {"task": "releases.tasks.apply_due_stage_changes_task", "schedule": 60.0},
    "stage-review-reminders": {
        "task": "releases.tasks.send_stage_review_reminders_task",
        "schedule": crontab(hour=envint("STAGEGATE_REVIEW_REMINDER_HOUR_UTC", 8), minute=0),
    },
    "delete-expired-tokens": {"task": "releases.tasks.delete_expired_tokens_task", "schedule": crontab(hour=3, minute=0)},
    "send-grant-expiry-notices": {"task": "releases.tasks.send_grant_expiry_notices_task",
                                  "schedule": crontab(hour=envint("STAGEGATE_GRANT_NOTICE_HOUR_UTC", 9), minute=0)},
    # The audit trail (releases/audit/): sealed and signed every few seconds, verified end to end daily.
    "seal-audit-trail": {"task": "releases.tasks.seal_audit_trail_task",
                         "schedule": float(envint("STAGEGATE_AUDIT_SEAL_INTERVAL_S", 2))},
    "verify-audit-trail": {"task": "releases.tasks.verify_audit_trail_task",
                           "schedule": crontab(hour=envint("STAGEGATE_AUDIT_VERIFY_HOUR_UTC", 4), minute=30)},
}

# The key that signs audit checkpoints (releases/audit/signing.py): a PEM file, or the key itself. It never
# enters the database. `make demo` and the tests make their own; production refuses to start without one.
STAGEGATE_AUDIT_KEY_FILE = envstr("STAGEGATE_AUDIT_KEY_FILE", "")
STAGEGATE_AUDIT_KEY = envstr("STAGEGATE_AUDIT_KEY", "")

# ---------------------------------------------------------------------------
# API
# ---------------------------------------------------------------------------
REST_FRAMEWORK = {
    # Staff tools send `Authorization: Token <key>` (knox; `manage.py create_token`); browsers use the session.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "releases.access.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "config.api_schema.StagegateAutoSchema",
    "EXCEPTION_HANDLER": "config.api_errors.api_exception_handler",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 100,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Stagegate API",
    "DESCRIPTION": "Staged release of machine-learning models: registry, stages, partner access, datasets.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # One name for the stage choices wherever they appear (from_stage, to_stage, stage); the two `kind`s apart.
    "ENUM_NAME_OVERRIDES": {"StageEnum": "releases.stage_names.Stage", "JobKindEnum": "workers.models.Job.Kind",
                            "DatasetKindEnum": "registry.models.OutputDataset.Kind"},
}

# https://jazzband.github.io/django-rest-knox/settings/ — tokens are stored hashed; default lifetime:
KNOX_TOKEN_MODEL = "knox.AuthToken"
REST_KNOX = {"TOKEN_TTL": timedelta(days=envint("STAGEGATE_TOKEN_TTL_DAYS", 30)), "AUTO_REFRESH": False}

# ---------------------------------------------------------------------------
# Release governance (rules in releases/stages.py; these only tune them)
# ---------------------------------------------------------------------------
# Approvals by policy staff other than the requester, per target stage (at least 1 each).
STAGEGATE_APPROVALS_REQUIRED = {
    "internal": envint("STAGEGATE_APPROVALS_INTERNAL", 1),
    "partners": envint("STAGEGATE_APPROVALS_PARTNERS", 1),
    "public": envint("STAGEGATE_APPROVALS_PUBLIC", 2),
    "withdrawn": envint("STAGEGATE_APPROVALS_WITHDRAWN", 1),
}
STAGEGATE_REVIEW_INTERVAL_MONTHS = envint("STAGEGATE_REVIEW_INTERVAL_MONTHS", 6)
# Reviews due within this many days are listed (and reminded) alongside overdue ones.
STAGEGATE_REVIEW_DUE_SOON_DAYS = envint("STAGEGATE_REVIEW_DUE_SOON_DAYS", 14)
# Stage events are POSTed as JSON to each URL, signed `X-Stagegate-Signature: sha256=<hmac hex>`.
STAGEGATE_WEBHOOK_URLS = envlist("STAGEGATE_WEBHOOK_URLS", [])
STAGEGATE_WEBHOOK_SECRET = envstr("STAGEGATE_WEBHOOK_SECRET", "")
STAGEGATE_WEBHOOK_TIMEOUT_S = envint("STAGEGATE_WEBHOOK_TIMEOUT_S", 5)
# Hosts that webhooks registered in the admin may reach over plain http or inside private networks.
STAGEGATE_WEBHOOK_ALLOWED_HOSTS = envlist("STAGEGATE_WEBHOOK_ALLOWED_HOSTS", [])
# Messages (some carry a secret shown once, e.g. a new webhook's) stay on the server, not in a cookie.
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"
# A notice the outbox cannot deliver is retried (15 s, doubling, at most hourly) for this long, then kept as failed.
STAGEGATE_OUTBOX_GIVE_UP_H = envint("STAGEGATE_OUTBOX_GIVE_UP_H", 72)
# Addresses told of staff matters beside policy staff: stage events, data-removal requests, audit failures.
# Django's ADMINS (server error mails) are the same people.
STAGEGATE_NOTIFY_EMAILS = envlist("STAGEGATE_NOTIFY_EMAILS", [])
ADMINS = [(address, address) for address in STAGEGATE_NOTIFY_EMAILS]

# ---------------------------------------------------------------------------
# Partners and downloads (releases/access/rules.py, releases/access/links.py)
# ---------------------------------------------------------------------------
# Lifetime of a signed download link; clamped to at most an hour. Clients ask again when one expires.
STAGEGATE_LINK_TTL_S = envint("STAGEGATE_LINK_TTL_S", 600)
# A successful storage check of a file vouches for it this long in each server process before a link is
# issued without asking storage again; an outage gets 503 at most this late. 0 checks every link.
STAGEGATE_STORAGE_CHECK_WINDOW_MS = envint("STAGEGATE_STORAGE_CHECK_WINDOW_MS", 1000)
# The partner portal signs in with the session; its login page:
LOGIN_URL = "portal-login"
LOGIN_REDIRECT_URL = "portal-home"

# ---------------------------------------------------------------------------
# Researchers: output datasets (releases/access/dataset_links.py, config/throttles.py)
# ---------------------------------------------------------------------------
# Django's cache holds the rate-limit counters (and rendered plots); Redis, so every gunicorn worker
# counts against one limit. https://docs.djangoproject.com/en/5.0/topics/cache/#redis
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": envstr("STAGEGATE_CACHE_URL", REDIS_URL),
        "KEY_PREFIX": "stagegate",
    }
}
_RATE = re.compile(r"\d+/(s|sec|second|m|min|minute|h|hour|d|day)")


def _envrate(name: str, default: str) -> str:
    value = envstr(name, default).strip()
    if not _RATE.fullmatch(value):
        raise ImproperlyConfiguredEnv(f"{name}={value!r} is not a rate such as 60/min (periods: s, min, hour, day)")
    return value


# Requests to the dataset API and the /gpt-2/ compatibility path, per IP (anonymous) or per account.
STAGEGATE_DATASET_RATE_ANON = _envrate("STAGEGATE_DATASET_RATE_ANON", "60/min")
STAGEGATE_DATASET_RATE_USER = _envrate("STAGEGATE_DATASET_RATE_USER", "600/min")
# Submissions of the data-removal form per IP.
STAGEGATE_REMOVAL_RATE = _envrate("STAGEGATE_REMOVAL_RATE", "5/hour")
# Anonymous links to public sizes' files (each recorded and audited) per client.
STAGEGATE_LINK_RATE_ANON = _envrate("STAGEGATE_LINK_RATE_ANON", "120/min")
# Proxies whose X-Forwarded-For is believed (comma-separated CIDRs, e.g. the TLS proxy's 10.0.0.5/32); empty:
# the header is ignored and each request's peer is its client (config/client_ip.py).
STAGEGATE_TRUSTED_PROXIES = envlist("STAGEGATE_TRUSTED_PROXIES", [])
for _cidr in STAGEGATE_TRUSTED_PROXIES:
    try:
        ipaddress.ip_network(_cidr, strict=False)
    except ValueError:
        raise ImproperlyConfiguredEnv(f"STAGEGATE_TRUSTED_PROXIES: {_cidr!r} is not an address or CIDR") from None

# ---------------------------------------------------------------------------
# Login protection and the second factor
# https://django-axes.readthedocs.io/en/latest/4_configuration.html
# ---------------------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    # Counts failed logins (admin and portal alike) and refuses a locked-out username from that address.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = envint("STAGEGATE_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=envint("STAGEGATE_LOGIN_COOLOFF_MIN", 30))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# Locked out per username and client, the client as config.client_ip counts it (behind trusted proxies too).
AXES_CLIENT_IP_CALLABLE = "config.client_ip.client_key"
# The second factor (django-otp TOTP): every admin page needs a session verified at the admin's login, and every
# governance API call (requests, decisions, reviews, jobs) a verified session, a token created with a code, or
# the current code (`otp_token` in the body or the X-Stagegate-OTP header). On in production; off in the demo,
# which runs without authenticator apps. Devices: `manage.py totp_device USERNAME`.
STAGEGATE_SECOND_FACTOR = envbool("STAGEGATE_SECOND_FACTOR", False)
OTP_TOTP_ISSUER = "Stagegate"
# Signed download URLs must never leak through a Referer header (also in the demo): none leaves the site.
# Not no-referrer: under it browsers send `Origin: null` on every form POST, which CSRF refuses.
SECURE_REFERRER_POLICY = "same-origin"

# ---------------------------------------------------------------------------
# Mail and logging
# ---------------------------------------------------------------------------
EMAIL_BACKEND = envstr("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = envstr("DEFAULT_FROM_EMAIL", "stagegate@localhost")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": envstr("LOG_LEVEL", "INFO")},
    "loggers": {
        # botocore logs request URLs (with signatures) at DEBUG; never let them through.
        "botocore": {"level": "WARNING"},
        "urllib3": {"level": "WARNING"},
        # django-axes announces itself at INFO on every process start (each manage.py command).
        "axes": {"level": "WARNING"},
    },
}

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# ---------------------------------------------------------------------------
# Workers (workers/)
# ---------------------------------------------------------------------------
# Read-only corpora for training and reference text; absent on some machines (a fallback is used).
STAGEGATE_CORPORA_DIR = envstr("STAGEGATE_CORPORA_DIR", str(BASE_DIR.parent / "shared" / "corpora"))
# Models fetched from S3 and job scratch space.
STAGEGATE_CACHE_DIR = envstr("STAGEGATE_CACHE_DIR", str(RUN_DIR / "cache"))
# A running job without a heartbeat for this long is taken to have lost its worker and is requeued.
STAGEGATE_JOB_STALE_AFTER_S = envint("STAGEGATE_JOB_STALE_AFTER_S", 300)
# A job whose worker dies this many times fails with that reason instead of being handed out again.
STAGEGATE_JOB_MAX_ATTEMPTS = envint("STAGEGATE_JOB_MAX_ATTEMPTS", 3)
# Bounds on job parameters (workers/job_params.py): none can keep a worker busy for ever, exhaust its memory
# or fan a job out into more tasks than the queue should hold.
STAGEGATE_JOB_MAX_STEPS = envint("STAGEGATE_JOB_MAX_STEPS", 200_000)
STAGEGATE_JOB_MAX_BATCH = envint("STAGEGATE_JOB_MAX_BATCH", 512)
STAGEGATE_JOB_MAX_BATCH_TOKENS = envint("STAGEGATE_JOB_MAX_BATCH_TOKENS", 256 * 1024)  # batch_size × n_ctx
STAGEGATE_JOB_MAX_THREADS = envint("STAGEGATE_JOB_MAX_THREADS", 64)
# Data-parallel training processes one job may start on its worker's host (each holds a replica of the model).
STAGEGATE_JOB_MAX_NPROC = envint("STAGEGATE_JOB_MAX_NPROC", 8)
# Hosts one training run may span (node 0 takes the job, nodes 1… are handed to other training workers).
STAGEGATE_JOB_MAX_NNODES = envint("STAGEGATE_JOB_MAX_NNODES", 16)
# The address other hosts reach this worker at, for a multi-host run's rendezvous (default: its host name's).
STAGEGATE_WORKER_ADDRESS = envstr("STAGEGATE_WORKER_ADDRESS", "")
STAGEGATE_JOB_MAX_SPLIT_SAMPLES = envint("STAGEGATE_JOB_MAX_SPLIT_SAMPLES", 250_000)  # GPT-2's train split
STAGEGATE_JOB_MAX_SHARDS = envint("STAGEGATE_JOB_MAX_SHARDS", 2_000)
# A corpus (a file in the corpora folder or an s3://corpora/ prefix) above this is refused before it is read.
STAGEGATE_CORPUS_MAX_BYTES = envint("STAGEGATE_CORPUS_MAX_BYTES", 1024**3)
# Three kinds of work, three queues, so each runs on the hosts that suit it (docs/deploy.md): long training runs
# (many cores or accelerators), generation and detection (sampling shards: any number of workers), and the
# light platform tasks (outbox, audit sealing, expiry) on the default queue, which never waits behind either.
STAGEGATE_TRAINING_QUEUE = envstr("STAGEGATE_TRAINING_QUEUE", "training")
STAGEGATE_GENERATION_QUEUE = envstr("STAGEGATE_GENERATION_QUEUE", "generation")
# Jobs with device=cuda (training and generation alike) go here: only workers on hosts with GPUs consume it.
STAGEGATE_CUDA_QUEUE = envstr("STAGEGATE_CUDA_QUEUE", "cuda")
CELERY_BEAT_SCHEDULE["requeue-stale-jobs"] = {"task": "workers.tasks.requeue_stale_jobs_task", "schedule": 60.0}
CELERY_BEAT_SCHEDULE["advance-studies"] = {"task": "workers.tasks.advance_studies_task", "schedule": 30.0}
CELERY_TASK_ROUTES = {
    "workers.tasks.train_task": {"queue": STAGEGATE_TRAINING_QUEUE},
    **{f"workers.tasks.{task}": {"queue": STAGEGATE_GENERATION_QUEUE} for task in (
        "generate_output_dataset_task", "generate_shard_task", "finish_output_dataset_task",
        "detection_baseline_task", "evaluate_task")},
}
# Fail a submission fast (and answer 503) when Redis is down, instead of hanging the request.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1}
CELERY_BROKER_CONNECTION_TIMEOUT = 3
