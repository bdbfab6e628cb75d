"""The job lifecycle: claims are exclusive, progress belongs to the current claim, cancel stops work."""

from datetime import timedelta

import pytest
from django.utils import timezone

from workers import jobs, tasks
from workers.errors import JobNotCancellable
from workers.models import Job


@pytest.fixture
def job(db):
    return Job.objects.create(kind=Job.Kind.BASELINE, params={})


def test_a_queued_job_is_claimed_once(job):
    first = jobs.job_claim(job.pk)
    assert first is not None and first.status == Job.Status.RUNNING and first.attempts == 1
    assert jobs.job_claim(job.pk) is None


def test_a_running_job_without_heartbeat_is_taken_over(job, settings):
    settings.STAGEGATE_JOB_STALE_AFTER_S = 60
    first = jobs.job_claim(job.pk)
    Job.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=120))
    second = jobs.job_claim(job.pk)
    assert second is not None and second.attempts == 2
    with pytest.raises(jobs.JobLost):
        jobs.job_heartbeat(first, done=5)
    assert not jobs.job_succeed(first, result={"stale": True})
    jobs.job_heartbeat(second, done=7, total=10, unit="steps")
    assert jobs.job_succeed(second, result={"ok": True})
    job.refresh_from_db()
    assert (job.status, job.result, job.progress_done, job.progress_total) == ("succeeded", {"ok": True}, 7, 10)


def test_cancelling_stops_the_running_worker_at_its_next_heartbeat(job):
    running = jobs.job_claim(job.pk)
    jobs.job_cancel(job=job)
    with pytest.raises(jobs.JobLost):
        jobs.job_heartbeat(running, done=1)
    job.refresh_from_db()
    assert job.status == Job.Status.CANCELLED and job.finished_at is not None


def test_a_finished_job_cannot_be_cancelled(job):
    running = jobs.job_claim(job.pk)
    jobs.job_succeed(running, result={})
    with pytest.raises(JobNotCancellable):
        jobs.job_cancel(job=job)


def test_stale_jobs_are_those_silent_for_too_long(job, settings):
    settings.STAGEGATE_JOB_STALE_AFTER_S = 60
    fresh = Job.objects.create(kind=Job.Kind.BASELINE, params={}, enqueued_at=timezone.now())
    jobs.job_claim(job.pk)
    assert jobs.jobs_stale() == []
    Job.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=61))
    Job.objects.filter(pk=fresh.pk).update(enqueued_at=timezone.now() - timedelta(seconds=61))
    assert sorted(jobs.jobs_stale()) == sorted([job.pk, fresh.pk])


def test_shard_progress_adds_up_under_concurrent_reports(job):
    jobs.job_claim(job.pk)
    for _ in range(3):
        jobs.job_add_progress(job.pk, 50)
    job.refresh_from_db()
    assert job.progress_done == 150


def test_each_job_goes_to_the_queue_of_its_kind_and_device(settings):
    """docs/deploy.md: training, generation and light tasks apart; every CUDA job on GPU hosts only."""
    from workers.services import queue_for

    expected = {
        (Job.Kind.TRAIN, "cpu"): settings.STAGEGATE_TRAINING_QUEUE,
        (Job.Kind.GENERATE, "cpu"): settings.STAGEGATE_GENERATION_QUEUE,
        (Job.Kind.BASELINE, None): settings.STAGEGATE_GENERATION_QUEUE,
        (Job.Kind.TRAIN, "cuda"): settings.STAGEGATE_CUDA_QUEUE,
        (Job.Kind.GENERATE, "cuda"): settings.STAGEGATE_CUDA_QUEUE,
    }
    for (kind, device), queue in expected.items():
        assert queue_for(Job(kind=kind, params={"device": device} if device else {})) == queue
    assert len(set(expected.values()) | {settings.CELERY_TASK_DEFAULT_QUEUE}) == 4


def test_a_cuda_job_reaching_a_worker_without_cuda_says_so():
    import torch

    from workers import generation

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(generation.NoAccelerator, match="no CUDA device"):
        generation._device({"device": "cuda"})
    assert generation._device({}) == "cpu"


class _Retry(Exception):
    pass


class _Task:
    """What _run_claimed uses of a bound Celery task: its retry count, and retry()."""

    def __init__(self, retries: int = 0) -> None:
        self.request = type("Request", (), {"retries": retries})()

    def retry(self, countdown: int = 0, exc=None) -> _Retry:
        return _Retry(countdown)


WAITS = len(tasks.COMMIT_WAITS_S)


@pytest.mark.parametrize(("status", "visible_after", "retries", "claims", "outcome"), [
    (Job.Status.QUEUED, 3, 0, 3, "ran"),  # the claims ran before the submission's commit, which landed after two
    (Job.Status.QUEUED, None, 0, 1 + WAITS, "retried"),  # a slower commit: waited for through a retry
    (None, None, 0, 1 + WAITS, "retried"),  # not there yet
    (None, None, tasks.MAX_TRANSIENT_RETRIES, 1 + WAITS, "dropped"),  # never committed: given up
    (Job.Status.RUNNING, None, 0, 1, "dropped"),  # another worker has it: no waiting
    (Job.Status.SUCCEEDED, None, 0, 1, "dropped"),  # a redelivered message for a finished job
])  # fmt: skip
def test_a_message_that_overtook_its_job_s_commit_claims_again(db, monkeypatch, status, visible_after, retries,
                                                               claims, outcome):
    job = Job.objects.create(kind=Job.Kind.TRAIN, params={}, status=status or Job.Status.QUEUED)
    job_id = job.pk if status else job.pk + 1000
    made, claim, slept = [], jobs.job_claim, []

    def claim_before_the_commit(pk):
        made.append(pk)
        return claim(pk) if len(made) == visible_after else None

    monkeypatch.setattr(jobs, "job_claim", claim_before_the_commit)
    monkeypatch.setattr(tasks.time, "sleep", slept.append)
    worked = []
    if outcome == "retried":
        with pytest.raises(_Retry):
            tasks._run_claimed(_Task(retries), job_id, worked.append)
    else:
        tasks._run_claimed(_Task(retries), job_id, worked.append)
    assert len(made) == claims and len(slept) == claims - 1
    assert [j.pk for j in worked] == ([job_id] if outcome == "ran" else [])
