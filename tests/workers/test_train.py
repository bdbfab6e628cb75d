"""Training jobs on real worker processes: results land in S3 and the registry; a killed worker's job resumes."""

import hashlib
import json
import os
import signal
import time
from pathlib import Path

import pytest

from registry import revisions, storage
from registry.models import Artifact, EvalResult, TrainingRun
from releases.models import AuditEvent
from workers import services
from workers.checkpoints import MANIFEST
from workers.checkpoints import prefix as _checkpoint_prefix
from workers.models import Job

from .test_generate_output_dataset import _wait

pytestmark = pytest.mark.integration


def _params(corpus_file, **extra) -> dict:
    return {"model_size": "tiny-1", "corpus": str(corpus_file), "steps": 40, "batch_size": 8,
            "eval_interval": 20, "checkpoint_interval": 20, "lr": 3e-3, **extra}


def test_training_registers_files_evals_and_a_loss_curve(untrained_size, corpus_file, worker_process, otto):
    worker_process("trainer")
    job = services.job_submit(kind="train", params=_params(corpus_file), user=otto)
    job = _wait(job, until=lambda j: j.status == Job.Status.SUCCEEDED, timeout_s=240, worker_process=worker_process)

    run = TrainingRun.objects.get(pk=job.result["training_run"])
    assert run.model_size == untrained_size and run.steps == 40
    assert run.settings["precision"] == "fp32"  # auto, on cpu
    assert run.loss_curve[0]["train_loss"] > run.loss_curve[-1]["train_loss"]
    assert run.final_val_loss is not None
    names = set(Artifact.objects.filter(model_size=untrained_size).values_list("filename", flat=True))
    assert names == {"config.json", "model.safetensors", "vocab.json", "merges.txt", "loss-curve.png"}
    for artifact in Artifact.objects.filter(model_size=untrained_size):
        assert revisions.artifact_verify(artifact=artifact)
        assert artifact.training_run == run
    png = Artifact.objects.get(model_size=untrained_size, filename="loss-curve.png")
    assert storage.read_bytes(png.s3_key)[:8] == b"\x89PNG\r\n\x1a\n"
    config = json.loads(storage.read_bytes(Artifact.objects.get(model_size=untrained_size,
                                                                filename="config.json").s3_key))
    assert (config["n_layer"], config["n_embd"], config["vocab_size"]) == (2, 32, 320)
    metrics = dict(EvalResult.objects.filter(model_size=untrained_size).values_list("metric", "value"))
    assert metrics["perplexity"] > 1 and metrics["bits_per_byte"] > 0
    assert job.progress_done == job.progress_total == 40 and job.progress_unit == "steps"
    with pytest.raises(storage.ObjectMissing):
        storage.head(_checkpoint_prefix(job) + MANIFEST)  # checkpoints are cleaned up
    # What the job recorded is on the audit trail in the name of whoever submitted it.
    recorded = list(AuditEvent.objects.filter(action__in=["training_run.created", "revision.created",
                                                          "eval_result.created"],
                                              actor_label="otto").order_by("id").values_list("action", flat=True))
    assert recorded == ["training_run.created", "revision.created", "eval_result.created", "eval_result.created"]


def test_a_worker_killed_mid_training_resumes_from_its_last_checkpoint(untrained_size, corpus_file,
                                                                       worker_process, settings):
    settings.STAGEGATE_JOB_STALE_AFTER_S = 4
    interval = 25
    doomed = worker_process("doomed")
    job = services.job_submit(kind="train", params=_params(
        corpus_file, steps=400, batch_size=16, checkpoint_interval=interval, eval_interval=100))

    def past_a_checkpoint(j: Job) -> bool:
        try:
            return j.progress_done >= 2 * interval and json.loads(
                storage.read_bytes(_checkpoint_prefix(j) + MANIFEST))["step"] >= interval
        except storage.ObjectMissing:
            return False

    job = _wait(job, until=past_a_checkpoint, timeout_s=240, worker_process=worker_process)
    worker_process.kill(doomed)
    job.refresh_from_db()
    done_at_kill = job.progress_done
    assert job.status == Job.Status.RUNNING and done_at_kill < 400

    worker_process("rescuer")
    requeued = []

    def finished_or_requeue(j: Job) -> bool:
        requeued.extend(services.jobs_requeue_stale())
        return j.status == Job.Status.SUCCEEDED

    job = _wait(job, until=finished_or_requeue, timeout_s=300, worker_process=worker_process)
    assert job.pk in requeued and job.attempts >= 2
    # At most one checkpoint interval of work is redone.
    assert job.result["resumed_from_step"] >= done_at_kill - interval
    assert TrainingRun.objects.get(pk=job.result["training_run"]).steps == 400
    assert Artifact.objects.filter(model_size=untrained_size, filename="model.safetensors").count() == 1


def test_cancelling_a_training_job_stops_it_and_publishes_nothing(untrained_size, corpus_file, worker_process):
    worker_process("trainer")
    job = services.job_submit(kind="train", params=_params(corpus_file, steps=2000, checkpoint_interval=1000))
    job = _wait(job, until=lambda j: j.progress_done > 0, timeout_s=120, worker_process=worker_process)
    from workers import jobs

    jobs.job_cancel(job=job)
    time.sleep(4)
    job.refresh_from_db()
    assert job.status == Job.Status.CANCELLED
    assert not Artifact.objects.filter(model_size=untrained_size).exists()


def test_training_a_released_size_makes_a_new_internal_revision_and_overwrites_nothing(
        untrained_size, corpus_file, worker_process, alice, bob):
    from tests.releases.conftest import move

    worker_process("trainer")
    short = {"steps": 10, "eval_interval": 10, "checkpoint_interval": 10}
    first = _wait(services.job_submit(kind="train", params=_params(corpus_file, **short)),
                  until=lambda j: j.status == Job.Status.SUCCEEDED, timeout_s=240, worker_process=worker_process)
    move(untrained_size, "partners", requester=alice, approvers=[bob])
    released = revisions.revision_get(untrained_size, first.result["revision"])
    files = {a.filename: (a.s3_key, a.sha256) for a in released.artifacts.all()}
    objects = {key: sha for key, sha in files.values()}

    second = _wait(services.job_submit(kind="train", params=_params(corpus_file, seed=7, **short)),
                   until=lambda j: j.status == Job.Status.SUCCEEDED, timeout_s=240, worker_process=worker_process)
    new = revisions.revision_get(untrained_size, second.result["revision"])
    assert (new.stage, new.parent) == ("internal", released)
    released.refresh_from_db()
    assert released.stage == "partners"
    assert {a.filename: (a.s3_key, a.sha256) for a in released.artifacts.all()} == files
    stored = {key: hashlib.sha256(storage.read_bytes(key)).hexdigest() for key in objects}
    assert stored == objects  # every object of the released revision still there, byte for byte


def _rank_processes(tmp_path: Path) -> list[int]:
    """Pids of this test's data-parallel rank processes (modelcore/data_parallel.py's children, whose spec file is
    in its workers' cache under tmp_path): another test, in another pytest process, may be running its own."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes() if entry.name.isdigit() else b""
            if b"modelcore.data_parallel" in cmdline and str(tmp_path).encode() in cmdline:
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_a_two_process_job_trains_and_neither_a_cancel_nor_a_dead_rank_leaves_it_hanging(
        untrained_size, corpus_file, worker_process, otto, tmp_path):
    """Issue #21: nproc processes on the worker's host, rank 0 in the job; a cancellation stops every rank, and
    a rank that dies fails the job within the collective timeout instead of hanging it."""
    worker_process("trainer")
    # bf16 mixed precision on CPU too: the setting reaches the ranks and is recorded as what the run computed in.
    job = services.job_submit(kind="train", params=_params(corpus_file, nproc=2, precision="bf16"), user=otto)
    job = _wait(job, until=lambda j: j.status == Job.Status.SUCCEEDED, timeout_s=240, worker_process=worker_process)
    run = TrainingRun.objects.get(pk=job.result["training_run"])
    assert run.settings["nproc"] == 2 and len(run.loss_curve) == 40
    assert run.settings["precision"] == "bf16"
    assert not _rank_processes(tmp_path)

    from workers import jobs

    cancelled = services.job_submit(kind="train", params=_params(corpus_file, nproc=2, steps=4000,
                                                                 checkpoint_interval=2000), user=otto)
    cancelled = _wait(cancelled, until=lambda j: j.progress_done > 0, timeout_s=120, worker_process=worker_process)
    assert _rank_processes(tmp_path)
    jobs.job_cancel(job=cancelled)
    deadline = time.monotonic() + 60
    while _rank_processes(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _rank_processes(tmp_path), "a cancelled job left a rank running"

    dying = services.job_submit(kind="train", params=_params(corpus_file, nproc=2, steps=4000,
                                                             checkpoint_interval=2000, collective_timeout_s=10),
                                user=otto)
    dying = _wait(dying, until=lambda j: j.progress_done > 0, timeout_s=120, worker_process=worker_process)
    for pid in _rank_processes(tmp_path):
        os.kill(pid, signal.SIGKILL)
    _wait(dying, until=lambda j: j.status in (Job.Status.FAILED, Job.Status.QUEUED), timeout_s=90,
          worker_process=worker_process)
