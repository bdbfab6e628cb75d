"""Driving a study: its job records the study, copies its corpora once, and submits each step's job as soon as
the steps it needs have succeeded. Nothing waits in a worker: `study_advance` runs when a step's job finishes
(a signal from workers/jobs.py) and on beat, and each call does what has become possible, under the study's
row lock, so two calls never submit one step twice.

Rerunning a study (the same name and settings) skips every step whose job succeeded, waits for those still
running, and submits again those that failed or were cancelled in an earlier run. (A generation that failed after
registering some of its datasets cannot be submitted again until those are removed: the step says so.)
"""

import hashlib
import logging
from pathlib import PurePosixPath

from django.db import OperationalError as DatabaseUnavailable
from django.db import transaction
from django.db.models import Q
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
# Worth another try at the next signal or beat; anything else fails the study, which a rerun resumes.
TRANSIENT = (ServiceUnavailable, DatabaseUnavailable, jobs.JobLost)


def study_job_start(job: Job) -> None:
    """The study job's task: find or record its study, then advance it. The job stays running until
    study_advance finishes it."""
    params = job.params
    with transaction.atomic():
        study, created = Study.objects.select_for_update().get_or_create(
            name=params["name"], defaults={"params": params, "created_by": job.created_by,
                                           "sizes": [size.slug for size in plan.family_sizes(params["family"])]})
        if not created and study.params != params:
            raise StudyMismatch(f"Study {study.name!r} exists with other settings; rerun it with its own "
                                f"({study.params}) or give another name.")
        if not created and study.job_id not in (None, job.pk) and study.job.status in OPEN:
            raise StudyMismatch(f"Study {study.name!r} is running already (job {study.job_id}).")
        study.job, study.finished_at = job, None
        study.save(update_fields=["job", "finished_at"])
    try:
        study_advance(study.pk)
    except ServiceUnavailable as exc:
        logger.warning("study %s not advanced yet (%s); the beat will", study.name, exc)


def _corpora_copy(study: Study) -> dict:
    """The study's corpora as objects of its own under s3://corpora/studies/<name>/, read once here: every step
    of every run reads the same bytes, whatever happens to the files they came from."""
    copies = {}
    for field in ("corpus", "eval_corpus"):
        spec = study.params[field]
        if not spec:
            continue
        data, name = inputs.corpus_bytes(spec)
        key = f"corpora/studies/{study.name}/{field}/{PurePosixPath(name).name or 'corpus'}.txt"
        storage.upload_bytes(data, key, content_type="text/plain; charset=utf-8")
        copies[field] = f"s3://{key}"
        copies[f"{field}_sha256"] = hashlib.sha256(data).hexdigest()  # what each step's job pins, checked
    return copies


def study_advance(study_id: int) -> None:
    """Submit what has become possible; finish the study job when every step has succeeded, fail it when a step
    of this run failed or could not start (cancelling its other open steps), cancel the open steps of a
    cancelled one. An unexpected error fails the study job too, rather than leaving it running for ever."""
    try:
        with transaction.atomic():
            _advance(study_id)
    except TRANSIENT:
        raise
    except Exception as exc:
        study = Study.objects.select_related("job").get(pk=study_id)
        if study.job is not None and study.job.status == Job.Status.RUNNING:
            _fail(study, f"{type(exc).__name__}: {exc}")
        raise


def _advance(study_id: int) -> None:
    study = Study.objects.select_for_update(of=("self",)).select_related("job", "job__created_by").get(pk=study_id)
    run = study.job
    if run is None:
        return
    if run.status == Job.Status.CANCELLED:
        _cancel_open_steps(study)
        return
    if run.status != Job.Status.RUNNING:
        return
    if not study.corpora:  # first, once: every step reads these copies
        study.corpora = _corpora_copy(study)
        study.save(update_fields=["corpora"])
    sizes = plan.study_sizes(study)
    if missing := [slug for slug in study.sizes if slug not in {size.slug for size in sizes}]:
        # Its figures compare the sizes it started with: without one of them it would finish, saying less.
        _fail(study, f"The study's sizes {', '.join(missing)} no longer exist; start a new study of the family.")
        return
    steps = plan.study_steps(study.params, study.corpora, sizes)
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
            _fail(study, f"Step {step.key} ({record.job.kind} job {record.job.pk}) {status}: {record.job.error[:1000]}")
            return
        elif all(need in done for need in step.needs):
            try:
                # In the name of whoever started this run, with that person's roles now.
                job = services.job_submit(kind=step.kind, params=step.params(done), user=run.created_by)
            except ServiceUnavailable:
                raise  # S3 or Redis away for now: the next signal or beat tries again
            except DomainError as refused:  # its starter lost the role, a dataset name was taken, …
                _fail(study, f"Step {step.key} could not start: {refused.message}")
                return
            StudyStep.objects.update_or_create(study=study, key=step.key, defaults={"job": job, "run": run})
    if len(done) == len(steps):
        study.finished_at = timezone.now()
        study.save(update_fields=["finished_at"])
        jobs.job_succeed(run, result={"study": study.name, "page": f"/study/{study.name}/", "steps": len(steps)})
    else:
        jobs.job_heartbeat(run, done=len(done), total=len(steps), unit="steps")


def _fail(study: Study, error: str) -> None:
    jobs.job_fail(study.job, error=error)
    _cancel_open_steps(study)  # nothing of a failed run goes on unwatched; a rerun submits them again


def _cancel_open_steps(study: Study) -> None:
    for record in study.steps.select_related("job").filter(job__status__in=OPEN):
        try:
            services.job_cancel(job=record.job)
        except JobNotCancellable:  # finished meanwhile: nothing to stop
            logger.info("step %s of %s finished before its cancel", record.key, study.name)


def studies_advance() -> list[int]:
    """Beat: advance every running study, and stop the steps of cancelled ones (a lost signal costs at most
    one beat). One study's failure does not keep the others waiting."""
    ids = list(Study.objects.filter(
        Q(job__status=Job.Status.RUNNING) | Q(job__status=Job.Status.CANCELLED, steps__job__status__in=OPEN),
    ).distinct().values_list("pk", flat=True))
    for study_id in ids:
        try:
            study_advance(study_id)
        except Exception:
            logger.exception("study %s not advanced", study_id)
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
