"""Transient S3 failures put a job back in the queue with backoff; past the retry limit it fails cleanly."""

import time

import pytest

from devstack.procs import free_port
from registry.models import DatasetSplit, OutputDataset
from workers import jobs, services, tasks
from workers.models import Job

pytestmark = pytest.mark.integration


@pytest.fixture
def datasets(transactional_db):
    made = {}
    for name, kind in (("gen", "generated"), ("ref", "reference")):
        made[name] = OutputDataset.objects.create(name=name, kind=kind, max_length=8)
        for split in DatasetSplit.SPLITS:
            DatasetSplit.objects.create(dataset=made[name], split=split, lines=1, s3_key=f"t/{name}/{split}",
                                        bytes=1, sha256="0" * 64)
    return made


def _wait_finished(job: Job, timeout_s: float = 60) -> Job:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.status in Job.FINISHED:
            return job
        time.sleep(0.2)
    pytest.fail(f"job still {job.status}")


def test_s3_down_retries_then_fails_the_job_cleanly(datasets, settings, monkeypatch, celery_worker_thread):
    settings.S3_ENDPOINT_URL = f"http://127.0.0.1:{free_port()}"
    settings.S3_ACCESS_KEY_ID, settings.S3_SECRET_ACCESS_KEY, settings.S3_CONNECT_TIMEOUT_S = "a", "b", 1
    monkeypatch.setattr(tasks, "_backoff_s", lambda retries: 0)
    retries = []
    original = jobs.job_release

    def counting_release(job, *, error):
        retries.append(error)
        return original(job, error=error)

    monkeypatch.setattr(jobs, "job_release", counting_release)
    job = services.job_submit(kind="detection_baseline", params={"dataset": "gen", "reference": "ref"})
    job = _wait_finished(job)
    assert job.status == Job.Status.FAILED
    assert job.error.startswith("StorageUnavailable") and "unreachable" in job.error
    assert len(retries) == tasks.MAX_TRANSIENT_RETRIES
    assert job.attempts == tasks.MAX_TRANSIENT_RETRIES + 1
