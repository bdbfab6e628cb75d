"""The test settings on SQLite, the demo's database. scripts/test.sh runs the fuzzing and the hostile-input
tests here as well as on PostgreSQL: users meet the demo first."""

from config.env import database
from config.settings.test import *  # noqa: F403
from config.settings.test import RUN_DIR

DATABASES = {"default": {**database(f"sqlite:///{RUN_DIR / 'test-sqlite.sqlite3'}"), "TEST": {}}}  # in memory
assert DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"
