"""Tiny helpers that read settings from the environment and fail loudly on bad values."""

import os
from pathlib import Path

import dj_database_url

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class ImproperlyConfiguredEnv(RuntimeError):
    """A variable is missing or cannot be parsed; the message names it."""


def envstr(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def envbool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfiguredEnv(f"{name}={raw!r} is not a boolean (use 1/0, true/false, yes/no, on/off)")


def envint(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfiguredEnv(f"{name}={raw!r} is not an integer") from None


def envlist(name: str, default: list[str] | None = None) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return list(default or [])
    return [item.strip() for item in raw.split(",") if item.strip()]


def envsecret(name: str) -> str:
    """A value production cannot run without: missing or empty is an error, never a default."""
    value = os.environ.get(name, "").strip()
    if not value:
        raise ImproperlyConfiguredEnv(f"{name} must be set (see .env.example)")
    return value


def database(url: str) -> dict:
    """DATABASES["default"] for `url`, the same in every settings module.

    On PostgreSQL, parameters are bound on the server and a statement is prepared once a connection has run
    it DATABASE_PREPARE_THRESHOLD times (default 5): planning cost PostgreSQL more than running the access
    and link statements did. 0 turns it off, as a transaction-pooling PgBouncer without prepared-statement
    support (before 1.21, or max_prepared_statements = 0) needs.

    On SQLite (the demo), the web server, the workers and the audit sealer write to one file at once.
    Transactions take the write lock when they begin (IMMEDIATE) and wait for it up to 20 s: a deferred
    transaction that reads and then writes fails at once with "database is locked" when another writer
    came in between, which no waiting can fix. WAL lets readers go on while one of them writes.
    """
    config = dj_database_url.parse(url, conn_max_age=60)
    threshold = envint("DATABASE_PREPARE_THRESHOLD", 5)
    if config["ENGINE"] == "django.db.backends.postgresql" and threshold > 0:
        config.setdefault("OPTIONS", {}).update(server_side_binding=True, prepare_threshold=threshold)
    if config["ENGINE"] == "django.db.backends.sqlite3":
        config.setdefault("OPTIONS", {}).update(
            transaction_mode="IMMEDIATE", timeout=20, init_command="PRAGMA journal_mode=WAL;"
        )
    return config


def load_env_file(path: Path) -> None:
    """Read KEY=VALUE lines into os.environ without overriding what is already set.

    `make demo` writes such a file into the run folder so that `manage.py` run from the
    repository root talks to the demo's database and services with no extra environment.
    """
    if not path.is_file():
        return
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        os.environ.setdefault(key.strip(), value.strip())
