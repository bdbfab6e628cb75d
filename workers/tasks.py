"""Celery tasks of the jobs: each loads its records by id and calls a service."""

import time

from celery import shared_task

# --------------------------------------------------------------------------- model jobs
# Each job task claims its Job with a conditional UPDATE (workers/jobs.py): a redelivered or requeued
# message for a job already running elsewhere, or finished, does nothing. That makes acks_late safe.
# Transient failures (S3 or the database briefly unreachable) put the job back in the queue and retry
# with backoff; past MAX_TRANSIENT_RETRIES, or on any other error, the job fails with the error recorded.
MAX_TRANSIENT_RETRIES = 4
COMMIT_WAITS_S = (0.05, 0.1, 0.2, 0.4)  # claiming again in place: under a second for a commit about to land


def _transient_errors() -> tuple[type[Exception], ...]:
    from django.db import OperationalError

    from registry.storage import StorageUnavailable

    return (StorageUnavailable, OperationalError)


def _backoff_s(retries: int) -> int:
    return min(300, 10 * 2**retries)


def _run_claimed(task, job_id: int, work) -> None:
    from workers import jobs
    from workers.models import Job

    job = jobs.job_claim(job_id)
    # Jobs are enqueued inside the transaction that records them, so this message may overtake the commit:
    # until it lands the job is not there, or (landing between the claim and the look) still queued. Claim
    # again shortly in place, which spends none of the job's transient-failure retries; a commit slower than
    # that is waited for through a retry, and a job that never commits is given up after those.
    for wait_s in COMMIT_WAITS_S:
        if job is not None or Job.objects.filter(pk=job_id).exclude(status=Job.Status.QUEUED).exists():
            break
        time.sleep(wait_s)
        job = jobs.job_claim(job_id)
    if job is None:
        taken = Job.objects.filter(pk=job_id).exclude(status=Job.Status.QUEUED).exists()
        if not taken and task.request.retries < MAX_TRANSIENT_RETRIES:
            raise task.retry(countdown=1 + task.request.retries)
        return
    try:
        result = work(job)
    except jobs.JobLost:
        return
    except _transient_errors() as exc:
        if task.request.retries < MAX_TRANSIENT_RETRIES and jobs.job_release(job, error=f"retrying: {exc}"):
            raise task.retry(exc=exc, countdown=_backoff_s(task.request.retries)) from exc
        jobs.job_fail(job, error=f"{type(exc).__name__}: {exc}")
        raise
    except Exception as exc:
        jobs.job_fail(job, error=f"{type(exc).__name__}: {exc}")
        raise
    if result is not None:
        jobs.job_succeed(job, result=result)


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=MAX_TRANSIENT_RETRIES)
def train_task(self, job_id: int) -> None:
    from workers import training
    from workers.services import queue_for

    def run(job):
        def dispatch_nodes(master_addr: str, master_port: int, checkpoint: dict | None) -> None:
            for node_rank in range(1, job.params.get("nnodes", 1)):
                train_node_task.apply_async(
                    args=[job.pk, job.attempts, node_rank, master_addr, master_port, checkpoint], queue=queue_for(job))

        return training.train_job_run(job=job, dispatch_nodes=dispatch_nodes)

    _run_claimed(self, job_id, run)


@shared_task(acks_late=True, reject_on_worker_lost=False)
def train_node_task(job_id: int, attempt: int, node_rank: int, master_addr: str, master_port: int,
                    checkpoint: dict | None | str = "latest") -> None:
    """A further host of a multi-host training run; node 0 (train_task) owns the job and its outcome: a node
    that fails makes node 0's collectives fail, and the job's retry dispatches the nodes again. `checkpoint`:
    the manifest of the one node 0 resumes from (None: none); "latest" only in messages sent before it existed."""
    from workers import training
    from workers.models import Job

    job = Job.objects.filter(pk=job_id, status=Job.Status.RUNNING, attempts=attempt).first()
    if job is None:
        return  # cancelled or superseded: node 0's next attempt dispatches its own nodes
    training.train_node_run(job=job, node_rank=node_rank, master_addr=master_addr, master_port=master_port,
                            checkpoint=checkpoint)


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=MAX_TRANSIENT_RETRIES)
def generate_output_dataset_task(self, job_id: int) -> None:
    """Fan the job out as one task per shard, with a finishing task once all are done."""
    from celery import chord

    from workers import generation, jobs
    from workers.services import queue_for

    def start(job):
        shards = generation.plan_shards(job.params)
        jobs.job_heartbeat(job, done=0, total=sum(s.count for s in shards), unit="samples")
        queue = queue_for(job)  # the shards run where the job does: a CUDA job's on GPU hosts only
        chord(
            [generate_shard_task.s(job.pk, job.attempts, generation.shard_as_dict(s)).set(queue=queue)
             for s in shards],
            finish_output_dataset_task.si(job.pk, job.attempts).set(queue=queue),
        ).apply_async()
        return None  # still running: the finishing task completes it

    _run_claimed(self, job_id, start)


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=MAX_TRANSIENT_RETRIES)
def generate_shard_task(self, job_id: int, attempt: int, shard: dict) -> bool:
    """One shard; idempotent (skipped when its object exists), so retrying it is always safe."""
    from workers import generation, jobs
    from workers.models import Job

    job = Job.objects.filter(pk=job_id, status=Job.Status.RUNNING, attempts=attempt).first()
    if job is None:
        return False  # cancelled or superseded by a newer attempt
    spec = generation.Shard(**shard)
    try:
        did = generation.shard_run(prefix=job.storage_prefix, shard=spec, params=job.params)
    except _transient_errors() as exc:
        if self.request.retries < MAX_TRANSIENT_RETRIES:
            raise self.retry(exc=exc, countdown=_backoff_s(self.request.retries)) from exc
        jobs.job_fail(job, error=f"shard {spec.dataset}/{spec.split}/{spec.index}: {exc}")
        raise
    jobs.job_add_progress(job_id, spec.count)
    return did


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=MAX_TRANSIENT_RETRIES)
def finish_output_dataset_task(self, job_id: int, attempt: int) -> None:
    from workers import generation, inputs, jobs
    from workers.models import Job

    job = Job.objects.filter(pk=job_id, status=Job.Status.RUNNING, attempts=attempt).first()
    if job is None:
        return
    try:
        result = generation.dataset_job_finalize(prefix=job.storage_prefix, params=job.params,
                                                 corpus_name=inputs.corpus_name(job),
                                                 corpus_text=lambda: inputs.corpus_text(job))
    except _transient_errors() as exc:
        if self.request.retries < MAX_TRANSIENT_RETRIES:
            raise self.retry(exc=exc, countdown=_backoff_s(self.request.retries)) from exc
        jobs.job_fail(job, error=f"{type(exc).__name__}: {exc}")
        raise
    except Exception as exc:
        jobs.job_fail(job, error=f"{type(exc).__name__}: {exc}")
        raise
    jobs.job_succeed(job, result=result)


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=MAX_TRANSIENT_RETRIES)
def detection_baseline_task(self, job_id: int) -> None:
    from registry.models import OutputDataset
    from workers import detection

    def run(job):
        result = detection.detection_run(
            dataset=OutputDataset.objects.get(name=job.params["dataset"]),
            reference=OutputDataset.objects.get(name=job.params["reference"]),
        )
        return {"detection_result": result.pk, "accuracy": result.accuracy, "c": result.c}

    _run_claimed(self, job_id, run)


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=MAX_TRANSIENT_RETRIES)
def evaluate_task(self, job_id: int) -> None:
    from workers import evaluation

    _run_claimed(self, job_id, lambda job: evaluation.evaluate_job_run(job=job))


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=MAX_TRANSIENT_RETRIES)
def study_task(self, job_id: int) -> None:
    """Start (or resume) a study; it stays running while its steps' jobs run (workers/study/runner.py)."""
    from workers.study import runner

    def start(job):
        runner.study_job_start(job)
        return None  # study_advance finishes it

    _run_claimed(self, job_id, start)


@shared_task
def study_advance_task(study_id: int) -> None:
    """A step of the study finished: submit what it unblocked."""
    from workers.study import runner

    try:
        runner.study_advance(study_id)
    except runner.TRANSIENT:
        pass  # taken over, cancelled, or a service away for now: the next signal or beat advances it


@shared_task
def advance_studies_task() -> list[int]:
    """Beat: advance every running study, in case a step's signal was lost."""
    from workers.study import runner

    return runner.studies_advance()


@shared_task
def requeue_stale_jobs_task() -> list[int]:
    """Beat, every minute: jobs whose worker died are handed to the broker again."""
    from workers import services as job_services

    return job_services.jobs_requeue_stale()
