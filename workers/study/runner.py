"""Driving a study: its job records the study, copies its corpora once, and submits each step's job as soon as
the steps it needs have succeeded. Nothing waits in a worker: `study_advance` runs when a step's job finishes
(a signal from workers/jobs.py) and on beat, and each call does what has become possible, under the study's
row lock, so two calls never submit one step twice.

Rerunning a study (the same name and settings) skips every step whose job succeeded, waits for those still
running, and submits again those that failed or were cancelled in an earlier run.
"""

import logging
from pathlib import PurePosixPath

from django.db import transaction
from django.dispatch import receiver
from django.utils import timezone
from kombu.exceptions import OperationalError

from config.celery import app as celery_app
from config.errors import DomainError, ServiceUnavailable
from registry import storage
from workers import inputs, jobs, services
from workers.errors import JobNotCancellable, StudyMismatch
from workers.models import Job, Study, StudyStep
from workers.study import plan

logger = logging.getLogger(__name__)
ADVANCE_TASK = "workers.tasks.study_advance_task"  # by name: the tasks module calls this one, not the reverse
OPEN = (Job.Status.QUEUED, Job.Status.RUNNING)


def study_job_start(job: Job) -> None:
    """The study job's task: find or record its study, copy its corpora, submit what can start. The job stays
    running until study_advance finishes it."""
    params = job.params
    with transaction.atomic():
        study, created = Study.objects.select_for_update().get_or_create(
            name=params["name"], defaults={"params": params, "created_by": job.created_by})
        if not created and study.params != params:
            raise StudyMismatch(f"Study {study.name!r} exists with other settings; rerun it with its own "
                                f"({study.params}) or give another name.")
        if not created and study.job_id not in (None, job.pk) and study.job.status in OPEN:
            raise StudyMismatch(f"Study {study.name!r} is running already (job {study.job_id}).")
        study.job, study.finished_at = job, None
        study.save(update_fields=["job", "finished_at"])
    if not study.corpora:
        study.corpora = _corpora_copy(study)
        study.save(update_fields=["corpora"])
    study_advance(study.pk)


def _corpora_copy(study: Study) -> dict:
    """The study's corpora as objects of its own under s3://corpora/studies/<name>/, read once here: every step
    of every run reads the same bytes, whatever happens to the files they came from."""
    copies = {}
    for field in ("corpus", "eval_corpus"):
        spec = study.params[field]
        if not spec:
            continue
        sha256, name = inputs.corpus_pin(spec)
        key = f"corpora/studies/{study.name}/{field}/{PurePosixPath(name).name or 'corpus'}.txt"
        storage.upload_bytes(storage.blob_get(sha256), key, content_type="text/plain; charset=utf-8")
        copies[field] = f"s3://{key}"
        copies[f"{field}_sha256"] = sha256
    return copies


def study_advance(study_id: int) -> None:
    with transaction.atomic():
        study = Study.objects.select_for_update(of=("self",)).select_related("job", "created_by").get(pk=study_id)
        run = study.job
        if run is None:
            return
        if run.status == Job.Status.CANCELLED:
            _cancel_open_steps(study)
            return
        if run.status != Job.Status.RUNNING:
            return
        steps = plan.study_steps(study.params, study.corpora, plan.study_sizes(study.params))
        records = {step.key: step for step in study.steps.select_related("job")}
        done: dict[str, dict] = {}
        for step in steps:
            record = records.get(step.key)
            status = record.job.status if record else None
            if status == Job.Status.SUCCEEDED:
                done[step.key] = record.job.result
            elif status in OPEN:
                continue
            elif record is not None and record.run_id == run.pk:
                jobs.job_fail(run, error=f"Step {step.key} ({record.job.kind} job {record.job.pk}) {status}: "
                                         f"{record.job.error[:1000]}")
                return
            elif all(need in done for need in step.needs):
                try:
                    job = services.job_submit(kind=step.kind, params=step.params(done), user=study.created_by)
                except ServiceUnavailable:
                    raise  # S3 or Redis away for now: the next signal or beat tries again
                except DomainError as refused:  # its starter lost the role, a dataset name was taken, …
                    jobs.job_fail(run, error=f"Step {step.key} could not start: {refused.message}")
                    return
                StudyStep.objects.update_or_create(study=study, key=step.key, defaults={"job": job, "run": run})
        if len(done) == len(steps):
            study.finished_at = timezone.now()
            study.save(update_fields=["finished_at"])
            jobs.job_succeed(run, result={"study": study.name, "page": f"/study/{study.name}/", "steps": len(steps)})
        else:
            jobs.job_heartbeat(run, done=len(done), total=len(steps), unit="steps")


def _cancel_open_steps(study: Study) -> None:
    for record in study.steps.select_related("job").filter(job__status__in=OPEN):
        try:
            services.job_cancel(job=record.job)
        except JobNotCancellable:  # finished meanwhile: nothing to stop
            logger.info("step %s of %s finished before its cancel", record.key, study.name)


def studies_advance() -> list[int]:
    """Beat: advance every running study (a lost signal costs at most one beat, and the study job beats)."""
    ids = list(Study.objects.filter(job__status=Job.Status.RUNNING).values_list("pk", flat=True))
    for study_id in ids:
        try:
            study_advance(study_id)
        except jobs.JobLost:
            pass
    return ids


@receiver(jobs.job_finished)
def _step_finished(sender, job_id: int, **kwargs) -> None:
    """A step's job (or a study job) finished: advance its study once this transaction commits."""
    ids = set(StudyStep.objects.filter(job_id=job_id).values_list("study_id", flat=True))
    ids |= set(Study.objects.filter(job_id=job_id).values_list("pk", flat=True))
    for study_id in ids:
        transaction.on_commit(lambda study_id=study_id: _enqueue_advance(study_id))


def _enqueue_advance(study_id: int) -> None:
    try:
        celery_app.send_task(ADVANCE_TASK, args=[study_id])
    except (OperationalError, ConnectionError, OSError) as exc:
        logger.warning("study %s not advanced now (%s); the beat will", study_id, exc)
