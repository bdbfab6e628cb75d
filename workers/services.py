"""Submitting and cancelling jobs (validated, audited, handed to the right queue), and the stale-job sweep."""

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from kombu.exceptions import OperationalError

from config.celery import app as celery_app
from releases.audit.chain import audit_record
from releases.roles import CANCEL_JOB, SUBMIT_JOB, require
from workers import inputs, jobs
from workers.errors import BrokerUnavailable
from workers.job_params import params_validate
from workers.models import Job

JOB_ROLES = "operators or policy-staff"

# The task that runs each kind, by its registered name: the tasks call this module, not the reverse.
TASK_OF_KIND = {
    Job.Kind.TRAIN: "workers.tasks.train_task",
    Job.Kind.GENERATE: "workers.tasks.generate_output_dataset_task",
    Job.Kind.BASELINE: "workers.tasks.detection_baseline_task",
    Job.Kind.EVALUATE: "workers.tasks.evaluate_task",
    Job.Kind.STUDY: "workers.tasks.study_task",
}


def queue_for(job: Job) -> str:
    """Where a job's tasks go (docs/deploy.md): GPU hosts take every CUDA job; otherwise training and
    generation (with evaluations and detection baselines) have their own queues, apart from the platform's light
    tasks, where a study job, which only submits other jobs, runs too."""
    if job.kind == Job.Kind.STUDY:
        return settings.CELERY_TASK_DEFAULT_QUEUE
    if job.params.get("device") == "cuda":
        return settings.STAGEGATE_CUDA_QUEUE
    return settings.STAGEGATE_TRAINING_QUEUE if job.kind == Job.Kind.TRAIN else settings.STAGEGATE_GENERATION_QUEUE


def job_enqueue(job: Job) -> None:
    """Hand a job to the broker (again, for a stale one); the worker's claim makes duplicates harmless."""
    task = celery_app.tasks[TASK_OF_KIND[job.kind]]
    queue = queue_for(job)
    try:
        task.apply_async(args=[job.pk], queue=queue)
    except (OperationalError, ConnectionError, OSError) as exc:
        raise BrokerUnavailable(f"The job queue (Redis) is unreachable; no job was created ({exc}).") from exc
    Job.objects.filter(pk=job.pk).update(enqueued_at=timezone.now())


@transaction.atomic
def job_submit(*, kind: str, params: dict, user=None, ip: str | None = None) -> Job:
    """Validate, record, audit and enqueue a job, all or nothing: with the broker down the caller gets 503 and
    nothing is recorded. `user` None is an operator's command on the server."""
    if user is not None:
        require(user, SUBMIT_JOB, to="submit jobs", role=JOB_ROLES)
    valid = params_validate(kind, params)
    pinned = inputs.pinned_inputs(kind, valid)  # read once, here, then the same bytes on every worker
    job = Job.objects.create(kind=kind, params=valid, inputs=pinned,
                             created_by=user if user is not None and user.pk else None)
    audit_record(actor=user, action="job.submitted", target=job, ip=ip,
                 data={"kind": kind, "params": valid, "inputs": pinned})
    # Inside the transaction, so a broker outage rolls the job back; a worker that takes the message before
    # the commit waits for the row (workers/tasks.py).
    job_enqueue(job)
    job.refresh_from_db()
    return job


@transaction.atomic
def job_cancel(*, job: Job, user=None, ip: str | None = None) -> Job:
    if user is not None:
        require(user, CANCEL_JOB, to="cancel jobs", role=JOB_ROLES)
    # Locked, so the status recorded as `before` is the one this cancel ended.
    before = Job.objects.select_for_update().filter(pk=job.pk).values_list("status", flat=True).first()
    job = jobs.job_cancel(job=job)
    audit_record(actor=user, action="job.cancelled", target=job, before=before, after=job.status, ip=ip,
                 data={"kind": job.kind})
    return job


def jobs_requeue_stale() -> list[int]:
    """Beat: hand jobs whose worker died, or whose message was lost, to the broker again; a job that has lost
    its worker STAGEGATE_JOB_MAX_ATTEMPTS times fails with that reason instead (it may be what kills them)."""
    requeued = []
    for job in Job.objects.filter(pk__in=jobs.jobs_stale()):
        if job.status == Job.Status.RUNNING and job.attempts >= settings.STAGEGATE_JOB_MAX_ATTEMPTS:
            jobs.job_give_up(job)
            continue
        job_enqueue(job)
        requeued.append(job.pk)
    return requeued
