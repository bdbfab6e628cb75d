"""Named actors and the real-service fixtures (SeaweedFS S3, a Celery worker) shared by all tests."""

import tempfile
import uuid
from pathlib import Path

import freezegun
import pytest
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from releases.roles import OPERATORS_GROUP, POLICY_STAFF_GROUP, role_groups_ensure

# freeze_time walks every loaded module; on transformers' lazy modules that imports all of transformers (its
# RAG model imports `datasets`, pyarrow and pandas), which crashed the interpreter in garbage collection.
freezegun.configure(extend_ignore_list=["transformers", "datasets", "huggingface_hub", "pyarrow", "pandas"])


# --------------------------------------------------------------------------- actors
def _user(django_user_model, username: str, **flags):
    return django_user_model.objects.create_user(username=username, password="pw-" + username,
                                                 email=f"{username}@example.org", **flags)


@pytest.fixture
def role_groups(db) -> dict[str, Group]:
    """The role groups with their permissions (a transactional test's flush empties what the migration made)."""
    return role_groups_ensure()


@pytest.fixture
def policy_staff_group(role_groups) -> Group:
    return role_groups[POLICY_STAFF_GROUP]


@pytest.fixture
def alice(django_user_model, policy_staff_group):
    """Policy staff, who also use the admin (is_staff)."""
    user = _user(django_user_model, "alice", is_staff=True)
    user.groups.add(policy_staff_group)
    return user


@pytest.fixture
def bob(django_user_model, policy_staff_group):
    """Policy staff, who also use the admin (is_staff)."""
    user = _user(django_user_model, "bob", is_staff=True)
    user.groups.add(policy_staff_group)
    return user


@pytest.fixture
def carol(django_user_model, policy_staff_group):
    """Policy staff, who also use the admin (is_staff)."""
    user = _user(django_user_model, "carol", is_staff=True)
    user.groups.add(policy_staff_group)
    return user


@pytest.fixture
def dora(django_user_model, policy_staff_group):
    """Policy staff without `is_staff`: she works through the API and the public pages, never the admin."""
    user = _user(django_user_model, "dora")
    user.groups.add(policy_staff_group)
    return user


@pytest.fixture
def steve(django_user_model, role_groups):
    """`is_staff` without any role: he may enter the admin and do nothing governance-related there."""
    return _user(django_user_model, "steve", is_staff=True)


@pytest.fixture
def otto(django_user_model, role_groups):
    """An operator: runs jobs and sees unreleased sizes; takes no release decisions."""
    user = _user(django_user_model, "otto", is_staff=True)
    user.groups.add(role_groups[OPERATORS_GROUP])
    return user


@pytest.fixture
def rita(django_user_model):
    """A researcher with a plain account."""
    return _user(django_user_model, "rita")


@pytest.fixture
def admin_user(django_user_model):
    """A superuser; not policy staff."""
    return django_user_model.objects.create_superuser("admin", "admin@example.org", "pw-admin")


@pytest.fixture(autouse=True)
def fresh_cache(settings):
    """Rate-limit counters and cached plots of this test only (the cache is the shared Redis)."""
    settings.CACHES = {"default": {**settings.CACHES["default"], "KEY_PREFIX": f"test-{uuid.uuid4().hex}"}}


@pytest.fixture(autouse=True)
def _fresh_storage_checks():
    """Each test starts with no remembered storage checks (registry.storage.head_recent)."""
    from registry import storage

    storage._recent_heads.clear()


@pytest.fixture
def api() -> APIClient:
    return APIClient()


# --------------------------------------------------------------------------- real services
@pytest.fixture(scope="session")
def s3_server():
    """A private SeaweedFS on free loopback ports for the whole session; checks every signature."""
    from devstack.seaweed import new_credentials, start_seaweedfs

    access_key, secret_key = new_credentials()
    with tempfile.TemporaryDirectory(prefix="stagegate-s3-") as tmp:
        server = start_seaweedfs(Path(tmp), access_key=access_key, secret_key=secret_key, bucket="stagegate-test")
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def s3(s3_server, settings):
    """Point the platform's storage at the session's SeaweedFS."""
    _point_at(settings, s3_server)
    yield s3_server
    _point_at(settings, s3_server)  # a test may have pointed it at a dead port
    _audit_copies_remove()


def _point_at(settings, s3_server) -> None:
    settings.S3_ENDPOINT_URL = s3_server.endpoint_url
    settings.S3_PUBLIC_ENDPOINT_URL = ""
    settings.S3_ACCESS_KEY_ID = s3_server.access_key
    settings.S3_SECRET_ACCESS_KEY = s3_server.secret_key
    settings.S3_BUCKET = s3_server.bucket
    settings.S3_CONNECT_TIMEOUT_S = 2


def _audit_copies_remove() -> None:
    """The session's bucket outlives each test's database: its audit checkpoints' copies go with the test (the
    platform itself never deletes one)."""
    from registry import storage
    from releases.audit.sealer import CHECKPOINT_PREFIX

    for key in storage.list_keys(CHECKPOINT_PREFIX):
        storage.delete(key)


@pytest.fixture
def celery_worker_thread(transactional_db, settings):
    """A real Celery worker consuming from Redis in a thread of this process (tests need transactional_db)."""
    from celery.contrib.testing.worker import start_worker
    from django.conf import settings as django_settings

    from config.celery import app

    queues = [django_settings.CELERY_TASK_DEFAULT_QUEUE, django_settings.STAGEGATE_TRAINING_QUEUE,
              django_settings.STAGEGATE_GENERATION_QUEUE, django_settings.STAGEGATE_CUDA_QUEUE]
    _queues_purge(queues)  # what earlier tests left there names other tests' rows
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30, queues=queues) as worker:
        yield worker


@pytest.fixture
def broker_url():
    """Point the Celery app's producers at another broker URL for one test (e.g. one nobody listens on)."""
    from contextlib import contextmanager

    from config.celery import app

    @contextmanager
    def use(url: str):
        old = app.conf.broker_url

        def reset() -> None:
            app._pool = None
            app.amqp._producer_pool = None

        app.conf.broker_url = url
        reset()
        try:
            yield
        finally:
            app.conf.broker_url = old
            reset()

    return use


def _queues_purge(queues) -> None:
    """Drop what earlier tests left in this run's queues (jobs submitted with no worker to take them): their
    job ids mean other rows, or none, in this test's database, and a worker must not act on them."""
    from config.celery import app

    with app.connection_for_write() as connection:
        for queue in queues:
            connection.default_channel.queue_purge(queue)  # a queue never used holds nothing: 0 dropped


@pytest.fixture
def worker_process(transactional_db, s3, tmp_path):
    """Start real `celery worker` processes (separate OS processes, so they can be killed with -9)."""
    import os
    import signal
    import subprocess
    import sys

    from django.conf import settings as django_settings
    from django.db import connection

    db = connection.settings_dict

    def environment() -> dict[str, str]:  # read when a worker starts: a test may have set its corpora folder
        return {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
            **s3.env(),
            "STAGEGATE_CACHE_DIR": str(tmp_path / "worker-cache"),
            "STAGEGATE_CORPORA_DIR": django_settings.STAGEGATE_CORPORA_DIR,
            # Kill tests wait for a dead worker's job to go stale; keep that wait short.
            "STAGEGATE_JOB_STALE_AFTER_S": "4",
        }
    started: list[subprocess.Popen] = []

    def host_environment(host: str) -> dict[str, str]:
        """A simulated host of its own: HOME, cache and an empty corpora folder that no other worker shares."""
        root = tmp_path / "hosts" / host
        for folder in ("home", "cache", "corpora"):
            (root / folder).mkdir(parents=True, exist_ok=True)
        return {"HOME": str(root / "home"), "STAGEGATE_CACHE_DIR": str(root / "cache"),
                "STAGEGATE_CORPORA_DIR": str(root / "corpora"), "STAGEGATE_WORKER_ADDRESS": "127.0.0.1"}

    all_queues = (django_settings.CELERY_TASK_DEFAULT_QUEUE, django_settings.STAGEGATE_TRAINING_QUEUE,
                  django_settings.STAGEGATE_GENERATION_QUEUE, django_settings.STAGEGATE_CUDA_QUEUE)
    _queues_purge(all_queues)

    def start(name: str = "w1", queues: str | None = None, host: str | None = None) -> subprocess.Popen:
        queues = queues or ",".join(all_queues)
        log = open(tmp_path / f"worker-{name}-{len(started)}.log", "wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo", "--loglevel", "INFO",
             "-Q", queues, "-n", f"{name}-{os.getpid()}-{len(started)}@%h", "--without-mingle", "--without-gossip"],
            env={**environment(), **(host_environment(host) if host else {})}, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        started.append(proc)
        return proc

    def kill(proc: subprocess.Popen) -> None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

    start.kill = kill
    start.logs = lambda: "\n".join(p.read_text(errors="replace")[-3000:] for p in sorted(tmp_path.glob("worker-*.log")))
    yield start
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
