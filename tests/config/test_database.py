"""PostgreSQL connections bind parameters on the server and prepare the statements they repeat, in every
settings module, unless DATABASE_PREPARE_THRESHOLD=0."""

import os
import subprocess
import sys

import pytest
from django.db import connection

from registry.models import ModelSize
from tests.config.test_settings import PRODUCTION_ENV, ROOT


@pytest.mark.django_db
def test_a_repeated_statement_is_prepared_and_then_reused():
    def plans() -> list[int]:
        # One row per prepared statement: how often PostgreSQL ran it from its prepared form.
        with connection.cursor() as cursor:
            cursor.execute("SELECT generic_plans + custom_plans FROM pg_prepared_statements WHERE statement LIKE %s",
                           ["%registry_modelsize%"])
            return [row[0] for row in cursor.fetchall()]

    for slug in ("a", "b", "c", "d", "e"):
        list(ModelSize.objects.filter(slug=slug))
    assert plans() == []  # psycopg prepares a statement on its sixth run
    for slug in ("f", "g", "h"):
        list(ModelSize.objects.filter(slug=slug))
    assert plans() == [3]  # prepared once, then run three times with other parameters


def _database_options(**env) -> str:
    clean = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **PRODUCTION_ENV, **env}
    code = "from django.conf import settings; print(settings.DATABASES['default'].get('OPTIONS'))"
    done = subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=clean,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]  # after the shell's note on its automatic imports


def test_production_settings_prepare_statements_too_and_can_turn_it_off():
    assert _database_options() == "{'server_side_binding': True, 'prepare_threshold': 5}"
    assert _database_options(DATABASE_PREPARE_THRESHOLD="0") == "{}"
