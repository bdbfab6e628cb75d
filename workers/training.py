"""Training a registered size with modelcore: resumable from S3 checkpoints, results into the registry."""

import io
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from registry import revisions
from registry import services as registry_services
from registry.models import ModelSize, TrainingRun
from workers import bridge, checkpoints, corpora, inputs, jobs
from workers.errors import JobLost
from workers.models import Job


def _heartbeat_every_s() -> float:
    # Well inside the stale limit, so a live job is never mistaken for a dead one.
    return min(5.0, settings.STAGEGATE_JOB_STALE_AFTER_S / 4)

def _tokenizer(job: Job, work: Path, train_text: str, vocab_size: int):
    """The run's tokenizer: trained by its first attempt and recorded on the job by content
    (workers/inputs.py), so an attempt on any other host encodes the corpus identically."""
    from modelcore.tokenizer import Tokenizer, train_tokenizer

    directory = work / "tokenizer"
    if not inputs.tokenizer_pinned(job, directory):
        train_tokenizer([train_text], vocab_size).save(directory)
        if not inputs.tokenizer_pin(job, directory):
            inputs.tokenizer_pinned(job, directory)  # another attempt recorded its own first: use that one
    return Tokenizer.load(directory)


def _loss_curve_png(curve: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    train = [(p["step"], p["train_loss"]) for p in curve if p.get("train_loss") is not None]
    val = [(p["step"], p["val_loss"]) for p in curve if p.get("val_loss") is not None]
    if train:
        ax.plot(*zip(*train, strict=True), label="training loss", linewidth=1)
    if val:
        ax.plot(*zip(*val, strict=True), label="validation loss", marker="o", linewidth=1.5)
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    path.write_bytes(buffer.getvalue())


@dataclass
class _Run:
    """What every node of a training job prepares alike: the size, its inputs by content, the resumed checkpoint."""

    size: ModelSize
    config: object
    work: Path
    checkpoint_dir: Path
    checkpoint: dict | None  # the manifest of the checkpoint restored, None for a fresh start
    tokenizer: object
    held_out: str
    train_tokens: object
    val_tokens: object
    settings: object


def _prepare(job: Job, *, node: str = "", checkpoint: dict | str | None = checkpoints.LATEST) -> _Run:
    import torch

    from modelcore.train import TrainSettings

    params = job.params
    size = ModelSize.objects.get(slug=params["model_size"])
    config = bridge.gpt_config(size)
    work = Path(settings.STAGEGATE_CACHE_DIR) / "jobs" / f"{job.uid.hex}{node}"
    checkpoint_dir = work / "checkpoint"
    restored = checkpoints.restore(job, checkpoint_dir, checkpoint)
    train_text, held_out = corpora.split_corpus(inputs.corpus_text(job))
    tokenizer = _tokenizer(job, work, train_text, config.n_vocab)
    return _Run(
        size=size, config=config, work=work, checkpoint_dir=checkpoint_dir, checkpoint=restored,
        tokenizer=tokenizer, held_out=held_out,
        train_tokens=torch.tensor(corpora.encode_documents(tokenizer, train_text), dtype=torch.long),
        val_tokens=torch.tensor(corpora.encode_documents(tokenizer, held_out), dtype=torch.long),
        settings=TrainSettings(
            steps=params["steps"], batch_size=params["batch_size"], lr=params["lr"],
            warmup=max(1, params["steps"] // 10), grad_accum=params["grad_accum"],
            eval_interval=params["eval_interval"], checkpoint_interval=params["checkpoint_interval"],
            seed=params["seed"], threads=params["threads"], device=params["device"],
            precision=params.get("precision", "auto")),
    )


def _rendezvous(job: Job, *, node_rank: int = 0, master_addr: str = "127.0.0.1", master_port: int = 0):
    from modelcore.data_parallel import Rendezvous

    params = job.params
    return Rendezvous(nproc=params.get("nproc", 1), nnodes=params.get("nnodes", 1), node_rank=node_rank,
                      master_addr=master_addr, master_port=master_port,
                      timeout_s=params.get("collective_timeout_s", 120))


def worker_address() -> str:
    """The address other hosts reach this worker at, for a run's rendezvous (STAGEGATE_WORKER_ADDRESS)."""
    return settings.STAGEGATE_WORKER_ADDRESS or socket.gethostbyname(socket.gethostname())


def train_job_run(*, job: Job, dispatch_nodes=None) -> dict:
    """Node 0 of the run (the only node unless `nnodes` > 1): it alone beats, sees a cancellation, writes
    checkpoints to S3 and publishes the result. `dispatch_nodes(master_addr, master_port, checkpoint)` hands
    nodes 1…nnodes-1 to other training workers, with the manifest of the checkpoint this node resumes from
    (None: a fresh start), once this node's inputs are pinned and it is about to wait for them."""
    from modelcore.data_parallel import free_port, train_data_parallel
    from modelcore.evaluate import evaluate_text
    from modelcore.export import export_hf

    params = job.params
    prepared = _prepare(job)
    resumed_from = prepared.checkpoint["step"] if prepared.checkpoint else None
    size, work, tokenizer = prepared.size, prepared.work, prepared.tokenizer
    last_beat = [0.0]

    def on_progress(step: int, total: int, metrics: dict) -> None:
        if time.monotonic() - last_beat[0] >= _heartbeat_every_s() or step == total:
            last_beat[0] = time.monotonic()
            jobs.job_heartbeat(job, done=step, total=total, unit="steps")  # raises JobLost if cancelled

    jobs.job_heartbeat(job, done=resumed_from or 0, total=params["steps"], unit="steps")
    if params.get("nnodes", 1) > 1:  # other hosts meet this one at its address
        rendezvous = _rendezvous(job, master_addr=worker_address(), master_port=free_port())
        dispatch_nodes(rendezvous.master_addr, rendezvous.master_port, prepared.checkpoint)
    else:
        rendezvous = _rendezvous(job)
    # nproc processes on this host (modelcore/data_parallel.py), nnodes hosts in all; this process is rank 0.
    result = train_data_parallel(
        prepared.config, prepared.train_tokens, prepared.val_tokens, prepared.settings, rendezvous,
        work_dir=work / "ranks", checkpoint_dir=prepared.checkpoint_dir, resume=True, on_progress=on_progress,
        on_checkpoint=lambda path, step: checkpoints.upload(job, Path(path), step),
    )
    jobs.job_heartbeat(job)  # a cancel during the last steps stops here, before anything is published
    export_dir = export_hf(result.model, tokenizer, work / "export")
    report = evaluate_text(result.model, tokenizer, prepared.held_out, stride=prepared.config.n_ctx // 2,
                           batch_size=8)
    curve_png = work / "loss-curve.png"
    _loss_curve_png(result.loss_curve, curve_png, f"{size} on {inputs.corpus_name(job)}")

    # Recorded, and audited, in the name of whoever submitted the job.
    run = registry_services.training_run_save(run=TrainingRun(
        model_size=size, corpus=inputs.corpus_name(job) if params["corpus"] == "default"
        else params["corpus"], settings={**{k: v for k, v in params.items() if k != "model_size"},
                                "precision": prepared.settings.computes_in},
        steps=params["steps"], final_val_loss=result.final_val_loss, loss_curve=result.loss_curve,
        finished_at=timezone.now(),
    ), actor=job.created_by)
    # A new internal revision of exactly this run's files: the revisions already released stay as they are.
    revision = revisions.revision_create(
        size=size, files={**{name: export_dir / name for name in bridge.MODEL_FILES}, curve_png.name: curve_png},
        training_run=run, actor=job.created_by, note=f"Trained by job {job.pk} ({params['steps']} steps).")
    held_out_name = f"{inputs.corpus_name(job)} (held out)"
    for metric, value in (("perplexity", report.perplexity), ("bits_per_byte", report.bits_per_byte)):
        registry_services.eval_result_record(size=size, dataset=held_out_name, metric=metric, value=value,
                                             training_run=run, revision=revision, actor=job.created_by)
    checkpoints.delete_all(job)
    return {
        "training_run": run.pk, "revision": revision.revision,
        "artifacts": sorted(revision.artifacts.values_list("filename", flat=True)), "val_loss": result.final_val_loss,
        "perplexity": report.perplexity, "bits_per_byte": report.bits_per_byte, "resumed_from_step": resumed_from,
        "corpus_sha256": job.inputs.get("corpus_sha256"),
    }


def train_node_run(*, job: Job, node_rank: int, master_addr: str, master_port: int,
                   checkpoint: dict | str | None = checkpoints.LATEST) -> None:
    """Node `node_rank` > 0 of a multi-host run: the same inputs and checkpoint, fetched by content on this
    host, its nproc ranks joined to node 0's. It publishes nothing; it stops when the job is no longer the
    attempt it was started for (cancelled, taken over) or when node 0 goes (the collectives fail)."""
    from modelcore.data_parallel import train_data_parallel

    prepared = _prepare(job, node=f"-node{node_rank}", checkpoint=checkpoint)  # node 0's, not a newer one
    last_check = [time.monotonic()]

    def still_wanted(step: int, total: int, metrics: dict) -> None:
        if time.monotonic() - last_check[0] >= _heartbeat_every_s():
            last_check[0] = time.monotonic()
            if not Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING, attempts=job.attempts).exists():
                raise JobLost(f"job {job.pk} attempt {job.attempts} is over")

    train_data_parallel(
        prepared.config, prepared.train_tokens, prepared.val_tokens, prepared.settings,
        _rendezvous(job, node_rank=node_rank, master_addr=master_addr, master_port=master_port),
        work_dir=prepared.work / "ranks", checkpoint_dir=prepared.checkpoint_dir, resume=True,
        on_progress=still_wanted)
