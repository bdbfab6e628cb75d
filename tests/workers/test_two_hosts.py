"""Two simulated hosts (issue #21): workers with their own HOME, cache and an empty corpora folder, sharing only
PostgreSQL, Redis and S3. A training job killed on one host is resumed on the other and ends exactly where an
uninterrupted run ends; a generation job whose worker is killed mid-shard yields every id exactly once."""

import hashlib
import json

import pytest

from registry import storage
from registry.models import Artifact, OutputDataset, TrainingRun
from workers import services
from workers.checkpoints import MANIFEST
from workers.checkpoints import prefix as _checkpoint_prefix
from workers.models import Job

from .test_generate_output_dataset import SPLITS, _records, _wait

pytestmark = pytest.mark.integration
INTERVAL = 20


def _train(corpus_file, **extra) -> Job:
    return services.job_submit(kind="train", params={
        "model_size": "tiny-1", "corpus": str(corpus_file), "steps": 120, "batch_size": 8, "eval_interval": 40,
        "checkpoint_interval": INTERVAL, "lr": 3e-3, "threads": 1, **extra})


def _past_a_checkpoint(job: Job) -> bool:
    try:
        return json.loads(storage.read_bytes(_checkpoint_prefix(job) + MANIFEST))["step"] >= INTERVAL
    except storage.ObjectMissing:
        return False


def _weights(job: Job) -> str:
    return Artifact.objects.get(revision__revision=job.result["revision"], filename="model.safetensors").sha256


def test_a_job_moves_between_hosts_that_share_nothing_but_the_services(untrained_size, corpus_file, worker_process,
                                                                      settings):
    settings.STAGEGATE_JOB_STALE_AFTER_S = 4  # as the workers have it: a killed host's job is handed on soon
    pinned = hashlib.sha256(corpus_file.read_bytes()).hexdigest()
    host_a = worker_process("a", host="a")
    moved = _train(corpus_file)
    assert moved.inputs["corpus_sha256"] == pinned  # read once, at submission; the hosts have no corpora
    moved = _wait(moved, until=_past_a_checkpoint, timeout_s=180, worker_process=worker_process)
    worker_process.kill(host_a)
    corpus_file.write_text("Changed after submission: the job must not see this.")

    worker_process("b", host="b")
    requeued: list[int] = []

    def done(job: Job) -> bool:
        requeued.extend(services.jobs_requeue_stale())
        return job.status == Job.Status.SUCCEEDED

    moved = _wait(moved, until=done, timeout_s=300, worker_process=worker_process)
    assert moved.pk in requeued and moved.result["resumed_from_step"] >= INTERVAL
    assert moved.result["corpus_sha256"] == pinned

    corpus_file.write_bytes(storage.blob_get(pinned))  # the same text for the reference run
    reference = _wait(_train(corpus_file), until=lambda j: j.status == Job.Status.SUCCEEDED, timeout_s=300,
                      worker_process=worker_process)
    assert reference.inputs == moved.inputs  # the same corpus and tokenizer, by content
    resumed, whole = (TrainingRun.objects.get(pk=j.result["training_run"]).loss_curve for j in (moved, reference))
    step = moved.result["resumed_from_step"]
    assert [p["train_loss"] for p in resumed] == [p["train_loss"] for p in whole]
    assert resumed[step - 1]["train_loss"] == whole[step - 1]["train_loss"]
    assert _weights(moved) == _weights(reference)  # the same checkpoint, to the bit

    # Generation from it, shards shared by both hosts, one of them killed while it samples.
    size = untrained_size
    generate = services.job_submit(kind="generate_output_dataset", params={
        "model_size": size.slug, "splits": SPLITS, "max_length": 40, "shard_size": 5, "corpus": str(corpus_file),
        "name": "moved"})
    host_c = worker_process("c", host="c")
    _wait(generate, until=lambda j: j.progress_done >= 10, timeout_s=180, worker_process=worker_process)
    worker_process.kill(host_c)

    def finished(job: Job) -> bool:
        services.jobs_requeue_stale()
        return job.status == Job.Status.SUCCEEDED

    _wait(generate, until=finished, timeout_s=300, worker_process=worker_process)
    for name in ("moved", "moved-k40"):
        records = _records(OutputDataset.objects.get(name=name))
        ids = [row["id"] for split in ("train", "valid", "test") for row in records[split]]
        assert ids == list(range(sum(SPLITS.values()))), name


def test_one_training_run_spans_two_hosts_and_matches_one_process(untrained_size, corpus_file, worker_process):
    """nnodes=2: the job's worker is node 0 and hands node 1 to the other host's worker; with the same global
    batch, the run is the single-process run (the two halves' mean is exact), to the bit."""
    worker_process("a", host="a")
    worker_process("b", host="b")
    spanning = _train(corpus_file, nnodes=2, steps=40, eval_interval=20, collective_timeout_s=60)
    single = _train(corpus_file, grad_accum=2, steps=40, eval_interval=20)
    spanning, single = (_wait(job, until=lambda j: j.status == Job.Status.SUCCEEDED, timeout_s=300,
                              worker_process=worker_process) for job in (spanning, single))
    two, one = (TrainingRun.objects.get(pk=j.result["training_run"]).loss_curve for j in (spanning, single))
    assert [p["train_loss"] for p in two] == [p["train_loss"] for p in one]
    assert [p.get("val_loss") for p in two] == [p.get("val_loss") for p in one]
    assert _weights(spanning) == _weights(single)
    logs = worker_process.logs()
    assert "train_node_task" in logs and "succeeded" in logs
