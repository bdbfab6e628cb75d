"""The job lifecycle: create and enqueue, claim, heartbeat with progress, finish, cancel, requeue stale.

Every transition is a conditional UPDATE, so a retried, redelivered or duplicated task cannot run a
job twice at once or move a finished job: only the current claim (status running, same attempt) may
write progress or finish it.
"""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.dispatch import Signal
from django.utils import timezone

from workers.errors import JobLost, JobNotCancellable
from workers.models import Job

# Sent (job_id=…) once a job reaches a final status; studies listen (workers/study/runner.py).
job_finished = Signal()


def _finished(job_id: int, changed: bool) -> bool:
    if changed:
        job_finished.send(sender=Job, job_id=job_id)
    return changed


def _stale_before():
    return timezone.now() - timedelta(seconds=settings.STAGEGATE_JOB_STALE_AFTER_S)


def job_claim(job_id: int) -> Job | None:
    """Take a queued job, or one whose worker stopped sending heartbeats; None if it isn't ours to run."""
    now = timezone.now()
    claimed = (
        Job.objects.filter(pk=job_id)
        # A job whose worker died is taken over only while it has attempts left: one that kills every worker
        # that runs it fails instead (services.jobs_requeue_stale) of being handed out for ever.
        .filter(Q(status=Job.Status.QUEUED) | Q(status=Job.Status.RUNNING, heartbeat_at__lt=_stale_before(),
                                                attempts__lt=settings.STAGEGATE_JOB_MAX_ATTEMPTS))
        .update(status=Job.Status.RUNNING, heartbeat_at=now, attempts=F("attempts") + 1,
                started_at=Coalesce(F("started_at"), now))
    )
    return Job.objects.get(pk=job_id) if claimed == 1 else None


def job_heartbeat(job: Job, *, done: int | None = None, total: int | None = None, unit: str | None = None) -> None:
    """Record progress; raises JobLost when the job was cancelled or another worker took it over."""
    fields: dict = {"heartbeat_at": timezone.now()}
    if done is not None:
        fields["progress_done"] = done
    if total is not None:
        fields["progress_total"] = total
    if unit is not None:
        fields["progress_unit"] = unit
    if Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING, attempts=job.attempts).update(**fields) != 1:
        raise JobLost(f"job {job.pk} is no longer this worker's to run")


def job_add_progress(job_id: int, amount: int) -> None:
    """Shards of one job report concurrently; F() keeps their additions from overwriting each other."""
    Job.objects.filter(pk=job_id, status=Job.Status.RUNNING).update(
        progress_done=F("progress_done") + amount, heartbeat_at=timezone.now()
    )


def job_succeed(job: Job, *, result: dict) -> bool:
    changed = Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING, attempts=job.attempts).update(
        status=Job.Status.SUCCEEDED, result=result, finished_at=timezone.now(), heartbeat_at=timezone.now(),
        error="",
    )
    return _finished(job.pk, changed == 1)


def job_fail(job: Job, *, error: str) -> bool:
    changed = Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING, attempts=job.attempts).update(
        status=Job.Status.FAILED, error=error[:5000], finished_at=timezone.now()
    )
    return _finished(job.pk, changed == 1)


def job_give_up(job: Job) -> bool:
    """Fail a job whose worker died STAGEGATE_JOB_MAX_ATTEMPTS times (if no worker has taken it up meanwhile)."""
    changed = Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING, attempts=job.attempts,
                                 heartbeat_at__lt=_stale_before()).update(
        status=Job.Status.FAILED, finished_at=timezone.now(),
        error=(f"Gave up after {job.attempts} attempts: each time, its worker stopped sending heartbeats "
               "(killed, out of memory, or its host lost). Check the job's parameters before running it again."),
    )
    return _finished(job.pk, changed == 1)


def job_release(job: Job, *, error: str) -> bool:
    """Put a running job back in the queue for a retry after a transient failure (this claim ends)."""
    return Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING, attempts=job.attempts).update(
        status=Job.Status.QUEUED, error=error[:5000], enqueued_at=timezone.now()
    ) == 1


def job_cancel(*, job: Job) -> Job:
    """Cancel a queued or running job; a running worker notices at its next heartbeat and stops."""
    with transaction.atomic():
        if Job.objects.filter(pk=job.pk, status__in=[Job.Status.QUEUED, Job.Status.RUNNING]).update(
            status=Job.Status.CANCELLED, finished_at=timezone.now()
        ) != 1:
            job.refresh_from_db()
            raise JobNotCancellable(f"Job {job.pk} is {job.status}; only queued or running jobs can be cancelled.")
        _finished(job.pk, True)
    job.refresh_from_db()
    return job


def jobs_stale() -> list[int]:
    """Jobs whose worker died (no heartbeat for STAGEGATE_JOB_STALE_AFTER_S) or whose message was lost."""
    stale = _stale_before()
    return list(
        Job.objects.filter(
            # A running study job has no worker to lose: it waits for its steps' jobs, advanced by their signals and
            # the beat (workers/study/runner.py), however long a step takes on a busy worker.
            Q(status=Job.Status.RUNNING, heartbeat_at__lt=stale) & ~Q(kind=Job.Kind.STUDY)
            | Q(status=Job.Status.QUEUED, enqueued_at__lt=stale)
        ).values_list("pk", flat=True)
    )
