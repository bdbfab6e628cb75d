"""Submitting jobs: validate parameters per kind, record the job, enqueue it on the right queue."""

from django.conf import settings
from django.utils import timezone

from config.celery import app as celery_app
from workers import detection, generation, jobs, training
from workers.errors import JobParamsInvalid
from workers.models import Job

VALIDATORS = {
    Job.Kind.TRAIN: training.validate_params,
    Job.Kind.GENERATE: generation.validate_params,
    Job.Kind.BASELINE: detection.validate_params,
}


# The task that runs each kind, by its registered name: the tasks call this module, not the reverse.
TASK_OF_KIND = {
    Job.Kind.TRAIN: "workers.tasks.train_task",
    Job.Kind.GENERATE: "workers.tasks.generate_output_dataset_task",
    Job.Kind.BASELINE: "workers.tasks.detection_baseline_task",
}


def job_enqueue(job: Job) -> None:
    """Hand a job to the broker (again, for a stale one); the worker's claim makes duplicates harmless."""
    task = celery_app.tasks[TASK_OF_KIND[job.kind]]
    queue = settings.STAGEGATE_TRAINING_QUEUE if job.kind == Job.Kind.TRAIN else settings.CELERY_TASK_DEFAULT_QUEUE
    task.apply_async(args=[job.pk], queue=queue)
    Job.objects.filter(pk=job.pk).update(enqueued_at=timezone.now())


def job_submit(*, kind: str, params: dict, user=None) -> Job:
    if kind not in VALIDATORS:
        raise JobParamsInvalid(f"kind: one of {', '.join(VALIDATORS)}.")
    if not isinstance(params, dict):
        raise JobParamsInvalid("params: a JSON object.")
    valid = VALIDATORS[kind](params)
    job = jobs.job_create(kind=kind, params=valid, user=user, enqueue=job_enqueue)
    job.refresh_from_db()
    return job


def jobs_requeue_stale() -> list[int]:
    """Beat: hand jobs whose worker died, or whose message was lost, to the broker again."""
    requeued = []
    for job in Job.objects.filter(pk__in=jobs.jobs_stale()):
        job_enqueue(job)
        requeued.append(job.pk)
    return requeued
