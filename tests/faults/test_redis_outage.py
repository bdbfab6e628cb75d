"""Redis stopped and started again under the platform, on a private redis-server.

Submissions while it is down answer 503 and create no job. Work queued before an outage is not lost: this
Redis keeps an append-only file fsynced on every write (as production Redis should; the system Redis of the
demo keeps nothing on disk), so the message is there after the restart. The test does not run beat's stale-
job sweep, so it is the broker's copy that gets the job done. Workers started while Redis is down, and
workers whose Redis went away under them, reconnect and consume.
"""

import time

import pytest
from django.urls import reverse

from workers import services
from workers.models import Job

pytestmark = pytest.mark.integration


def _train_params(corpus_file) -> dict:
    return {"model_size": "tiny-1", "corpus": str(corpus_file), "steps": 4, "batch_size": 4, "eval_interval": 2,
            "checkpoint_interval": 2}


@pytest.fixture
def untrained(transactional_db, s3):
    from registry import services as registry_services
    from tests.workers.conftest import TINY_HPARAMS

    family = registry_services.family_upsert(slug="tiny", name="Tiny", bundled=True)
    return registry_services.model_size_upsert(family=family, slug="tiny-1", display_name="1",
                                               hparams=TINY_HPARAMS)


def _wait_succeeded(job: Job, worker_process, timeout_s: float = 180) -> Job:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.status == Job.Status.SUCCEEDED:
            return job
        if job.status in (Job.Status.FAILED, Job.Status.CANCELLED):
            pytest.fail(f"job {job.status}: {job.error}\n{worker_process.logs()}")
        time.sleep(0.3)
    pytest.fail(f"timed out with the job {job.status}\n{worker_process.logs()}")


def test_submission_answers_503_and_creates_nothing_while_redis_is_down(private_redis, untrained, api, alice,
                                                                        corpus_file):
    api.force_authenticate(alice)
    private_redis.stop()
    response = api.post(reverse("job-list"), {"kind": "train", "params": _train_params(corpus_file)},
                        format="json")
    assert response.status_code == 503
    assert response.json()["error"] == "broker_unavailable"
    assert not Job.objects.exists()

    private_redis.start()
    response = api.post(reverse("job-list"), {"kind": "train", "params": _train_params(corpus_file)},
                        format="json")
    assert response.status_code == 201, response.json()
    assert Job.objects.get().status == Job.Status.QUEUED


def test_queued_work_survives_a_redis_restart_and_workers_reconnect(private_redis, untrained, corpus_file,
                                                                    worker_process):
    queued = services.job_submit(kind="train", params=_train_params(corpus_file))
    enqueued_at = Job.objects.get(pk=queued.pk).enqueued_at
    private_redis.stop()
    worker = worker_process("w1")  # starts while Redis is down and keeps trying
    time.sleep(3)
    assert worker.poll() is None
    private_redis.start()
    job = _wait_succeeded(queued, worker_process)
    assert job.enqueued_at == enqueued_at  # consumed from the broker's copy, not re-enqueued by a sweep

    # Redis goes away under the connected, idle worker and comes back: the worker reconnects.
    private_redis.stop()
    time.sleep(2)
    private_redis.start()
    second = services.job_submit(kind="train", params=_train_params(corpus_file))
    _wait_succeeded(second, worker_process)
    assert worker.poll() is None
