"""Data-parallel training with torch.distributed (DDP), the way torchrun lays processes out: `nnodes` hosts,
`nproc` processes on each, global rank = node_rank × nproc + local rank, all meeting at master_addr:master_port.

On each host, local rank 0 runs in the calling process (a Celery worker's job, a test, the CLI) and keeps the
callbacks: progress, cancellation and, on global rank 0 only, checkpoints. Local ranks 1…nproc-1 are child
processes (`python -m modelcore.data_parallel SPEC`) that train on the same inputs, read from files in the work
folder, never from a pickle. Backend: gloo on CPU, nccl on CUDA. Every collective has a timeout, so a rank that
dies fails the others within `timeout_s` instead of hanging them; the caller then resumes from the last
checkpoint, with the same or another number of processes (modelcore/train.py says which).
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file

from .model import GPTConfig
from .train import CheckpointFn, ProgressFn, TrainResult, TrainSettings, train

SPEC_FILE, TOKENS_FILE = "rank-spec.json", "tokens.safetensors"
PR_SET_PDEATHSIG = 1
CHILD_EXIT_GRACE_S = 30


@dataclass(frozen=True)
class Rendezvous:
    """Where the processes of one run meet; the defaults are a single process."""

    nproc: int = 1  # processes on this host
    nnodes: int = 1
    node_rank: int = 0
    master_addr: str = "127.0.0.1"
    master_port: int = 0  # 0: a free port on this host (single-host runs only)
    timeout_s: float = 300.0  # the longest any collective waits for a rank

    @property
    def world(self) -> int:
        return self.nproc * self.nnodes

    def validate(self) -> Rendezvous:
        if self.nproc < 1 or self.nnodes < 1 or not 0 <= self.node_rank < self.nnodes:
            raise ValueError(f"nproc and nnodes at least 1, node_rank in [0, nnodes): got {self}")
        if self.nnodes > 1 and not self.master_port:
            raise ValueError("a run on several hosts needs master_addr and master_port that every host reaches")
        if self.timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        return self


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def backend_for(device: str) -> str:
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def _join(rendezvous: Rendezvous, rank: int, device: str) -> None:
    if torch.device(device).type == "cuda":
        if rendezvous.nproc > torch.cuda.device_count():
            raise ValueError(f"nproc {rendezvous.nproc} on a host with {torch.cuda.device_count()} GPUs: NCCL needs "
                             "one GPU per process")
        torch.cuda.set_device(rank % rendezvous.nproc)  # the local rank: one GPU each on this host
    dist.init_process_group(
        backend_for(device), init_method=f"tcp://{rendezvous.master_addr}:{rendezvous.master_port}",
        rank=rank, world_size=rendezvous.world, timeout=timedelta(seconds=rendezvous.timeout_s))


def train_data_parallel(
    config: GPTConfig,
    train_tokens: torch.Tensor,
    val_tokens: torch.Tensor | None,
    settings: TrainSettings,
    rendezvous: Rendezvous,
    *,
    work_dir: str | os.PathLike[str],
    checkpoint_dir: str | os.PathLike[str],
    resume: bool = True,
    on_progress: ProgressFn | None = None,
    on_checkpoint: CheckpointFn | None = None,
) -> TrainResult:
    """Train with rendezvous.world processes; returns this process's result (the trained model on every rank).

    `checkpoint_dir` must hold the checkpoint to resume, if any, before this is called (each host its own copy).
    One process with nothing to meet trains without torch.distributed at all.
    """
    rendezvous = rendezvous.validate()
    if rendezvous.world == 1:
        return train(config, train_tokens, val_tokens, settings, checkpoint_dir=checkpoint_dir, resume=resume,
                     on_progress=on_progress, on_checkpoint=on_checkpoint)
    if not rendezvous.master_port:
        rendezvous = Rendezvous(**{**asdict(rendezvous), "master_port": free_port()})
    if settings.threads == 0:  # share the host's cores out, rather than each rank taking them all
        settings = TrainSettings(**{**asdict(settings), "threads": max(1, (os.cpu_count() or 1) // rendezvous.nproc)})
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    tensors = {"train": torch.as_tensor(train_tokens, dtype=torch.long).contiguous()}
    if val_tokens is not None:
        tensors["val"] = torch.as_tensor(val_tokens, dtype=torch.long).contiguous()
    save_file(tensors, str(work / TOKENS_FILE))
    first = rendezvous.node_rank * rendezvous.nproc
    children = []
    try:
        for local in range(1, rendezvous.nproc):
            spec = work / f"{local}-{SPEC_FILE}"
            spec.write_text(json.dumps({
                "config": config.to_hparams(), "settings": asdict(settings), "rendezvous": asdict(rendezvous),
                "rank": first + local, "tokens": str(work / TOKENS_FILE),
                "checkpoint_dir": None if checkpoint_dir is None else str(checkpoint_dir),
                "resume": resume}))
            children.append(subprocess.Popen([sys.executable, "-m", "modelcore.data_parallel", str(spec)]))
        _join(rendezvous, first, settings.device)
        try:
            result = train(config, train_tokens, val_tokens, settings, checkpoint_dir=checkpoint_dir,
                           resume=resume, on_progress=on_progress,
                           on_checkpoint=on_checkpoint if first == 0 else None)
        finally:
            dist.destroy_process_group()
        for child in children:
            if child.wait(timeout=CHILD_EXIT_GRACE_S) != 0:
                raise RuntimeError(f"rank process {child.args[-1]} exited with {child.returncode}")
        return result
    finally:
        for child in children:  # a failed or cancelled run leaves no rank behind
            if child.poll() is None:
                child.kill()
                child.wait()


def _die_with_parent() -> None:
    """A rank outlives no killed parent (an OOM kill, a hard time limit): Linux sends it SIGKILL then."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (AttributeError, OSError):
        return  # not Linux: the collectives' timeout ends it
    if os.getppid() == 1:  # the parent died before the request took effect
        os._exit(1)


def _rank_main(spec_path: str) -> None:
    _die_with_parent()
    spec = json.loads(Path(spec_path).read_text())
    settings = TrainSettings(**{**spec["settings"], "betas": tuple(spec["settings"]["betas"])})
    rendezvous = Rendezvous(**spec["rendezvous"])
    tokens = load_file(spec["tokens"])
    _join(rendezvous, spec["rank"], settings.device)
    try:
        train(GPTConfig.from_hparams(spec["config"]), tokens["train"], tokens.get("val"), settings,
              checkpoint_dir=spec["checkpoint_dir"], resume=spec["resume"])
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    _rank_main(sys.argv[1])
