"""Production settings refuse to start without their secrets and pass `check --deploy` with them."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PRODUCTION_ENV = {
    "DJANGO_SETTINGS_MODULE": "config.settings.production",
    "DJANGO_SECRET_KEY": secrets.token_urlsafe(60),
    "DJANGO_ALLOWED_HOSTS": "stagegate.example.org",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/stagegate",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "S3_ENDPOINT_URL": "https://s3.example.org",
    "S3_BUCKET": "weights",
    "S3_ACCESS_KEY_ID": "AKIAEXAMPLE",
    "S3_SECRET_ACCESS_KEY": "example-secret",
    "STAGEGATE_AUDIT_KEY": secrets.token_hex(32),  # an Ed25519 private key as 64 hex digits
}


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **env}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=clean, capture_output=True,
                          text=True, timeout=120)


def test_check_deploy_is_clean_with_every_secret_set():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize("missing", ["DJANGO_SECRET_KEY", "DATABASE_URL", "REDIS_URL", "S3_BUCKET",
                                     "S3_SECRET_ACCESS_KEY", "DJANGO_ALLOWED_HOSTS", "STAGEGATE_AUDIT_KEY"])
def test_production_refuses_to_start_without(missing):
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != missing}
    result = _manage("check", env=env)
    assert result.returncode != 0
    assert missing in result.stderr


def test_production_refuses_sqlite():
    result = _manage("check", env={**PRODUCTION_ENV, "DATABASE_URL": "sqlite:///db.sqlite3"})
    assert result.returncode != 0
    assert "PostgreSQL" in result.stderr


def test_a_short_secret_key_is_refused():
    result = _manage("check", env={**PRODUCTION_ENV, "DJANGO_SECRET_KEY": "short"})
    assert result.returncode != 0
    assert "50 random characters" in result.stderr


def test_a_malformed_boolean_is_named():
    result = _manage("check", env={**PRODUCTION_ENV, "DJANGO_SECURE_SSL_REDIRECT": "maybe"})
    assert result.returncode != 0
    assert "DJANGO_SECURE_SSL_REDIRECT='maybe' is not a boolean" in result.stderr
