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



@pytest.fixture
def demo_sqlite(tmp_path, django_db_blocker):
    """A second database alias configured as the demo configures its SQLite file."""
    from django.db import connections

    from config.env import database

    alias = "demo_sqlite"
    connections.settings[alias] = connections.configure_settings(
        {"default": {}, alias: database(f"sqlite:///{tmp_path / 'demo.sqlite3'}")})[alias]
    with django_db_blocker.unblock():
        yield alias
        connections[alias].close()
    del connections.settings[alias]


def test_sqlite_writers_that_read_first_wait_for_each_other_instead_of_failing(demo_sqlite):
    """The demo's web server, workers and audit sealer share one SQLite file. Each of them reads, then writes,
    inside one transaction; begun deferred, two such transactions meet and one fails at once with "database is
    locked", which no timeout cures. Begun immediate, the second waits for the first."""
    import threading

    from django.db import connections, transaction

    with connections[demo_sqlite].cursor() as cursor:
        cursor.execute("CREATE TABLE events (n INTEGER)")
    both_read = threading.Barrier(2)
    failures: list[Exception] = []

    def writer() -> None:
        try:
            with transaction.atomic(using=demo_sqlite), connections[demo_sqlite].cursor() as cursor:
                cursor.execute("SELECT COUNT(*) FROM events")
                try:
                    both_read.wait(timeout=1)  # deferred, both get here holding a read lock
                except threading.BrokenBarrierError:
                    pass  # immediate: the other writer is waiting for our lock, not at the barrier
                cursor.execute("INSERT INTO events VALUES (1)")
        except Exception as error:  # noqa: BLE001 - the assertion below reports what a writer met
            failures.append(error)
        finally:
            connections[demo_sqlite].close()

    threads = [threading.Thread(target=writer) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == []
    with connections[demo_sqlite].cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM events")
        assert cursor.fetchone() == (2,)
        cursor.execute("PRAGMA journal_mode")
        assert cursor.fetchone() == ("wal",)
