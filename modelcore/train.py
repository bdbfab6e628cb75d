"""The training loop: AdamW, warmup + cosine schedule, clipping, accumulation, and checkpoints that resume exactly.

A checkpoint is a directory of `model.safetensors`, `optimizer.safetensors` and `state.json`: nothing pickled.

Data-parallel: when torch.distributed is initialised (modelcore/data_parallel.py starts the processes), the
model is wrapped in DistributedDataParallel and each optimiser step's micro-batches are shared out among the
ranks. A step is defined by its micro-batches, not by the processes: step n always consumes micro-batches
[n·M, (n+1)·M) of the same seeded sequence, M = grad_accum × world size at the start (kept in the checkpoint),
and each rank takes M / world of them. So one process with grad_accum = M computes the same step as M processes
with grad_accum 1 (up to the order of floating-point sums), and a checkpoint resumes with any number of
processes that divides M.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel

from .clipped_adamw import clip_and_step
from .export import load_model, load_safetensors_checked, save_safetensors
from .model import GPT, GPTConfig

CHECKPOINT_FORMAT = 1
MODEL_FILE, OPTIMIZER_FILE, STATE_FILE = "model.safetensors", "optimizer.safetensors", "state.json"
VAL_SEED_OFFSET = 1 << 40  # validation batches come from their own seeds, apart from training's
# auto: bf16 autocast on CUDA, exact fp32 on CPU. bf16: autocast on CPU too, i.e. mixed precision: the matrix
# products (and attention) in bf16, while weights, gradients, the optimiser and the loss's softmax stay fp32.
# It pays on CPUs with bf16 units (AMX, AVX512-BF16), about 3x the fp32 products; AVX-512 alone emulates them
# in oneDNN; a CPU with neither (AVX2 only) runs them in torch's scalar loops, ~90x slower than fp32 (measured on
# a Zen 3: [4096, 320] x [320, 1280] 2.6 s against 28 ms), so train() warns there.
PRECISIONS = ("auto", "fp32", "bf16")

logger = logging.getLogger(__name__)


@dataclass
class TrainSettings:
    steps: int = 1000
    batch_size: int = 16  # sequences per micro-batch; an optimiser step sees batch_size x grad_accum
    lr: float = 6e-4  # peak learning rate, reached after warmup
    warmup: int = 100
    grad_accum: int = 1
    clip: float = 1.0  # max gradient norm; 0 turns clipping off
    weight_decay: float = 0.1
    eval_interval: int = 100
    eval_batches: int = 20
    checkpoint_interval: int = 500
    seed: int = 1337
    threads: int = 0  # torch intra-op threads; 0 leaves torch's default
    device: str = "cpu"
    min_lr_ratio: float = 0.1  # the cosine ends at lr x min_lr_ratio
    betas: tuple[float, float] = (0.9, 0.95)
    precision: str = "auto"  # one of PRECISIONS

    def validate(self) -> TrainSettings:
        for name in (
            "steps",
            "batch_size",
            "grad_accum",
            "eval_interval",
            "eval_batches",
            "checkpoint_interval",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.lr <= 0 or self.warmup < 0 or self.clip < 0 or self.weight_decay < 0:
            raise ValueError("lr must be positive; warmup, clip and weight_decay not negative")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        return self

    @property
    def computes_in(self) -> str:
        """fp32 or bf16: what `precision` means on this run's device."""
        if self.precision == "auto":
            return "bf16" if torch.device(self.device).type == "cuda" else "fp32"
        return self.precision


@dataclass
class TrainResult:
    model: GPT
    loss_curve: list[dict] = field(default_factory=list)  # {step, lr, train_loss, elapsed_s[, val_loss]}
    final_val_loss: float | None = None
    resumed_from: int | None = None  # the checkpoint step this run continued from


ProgressFn = Callable[[int, int, dict], None]
CheckpointFn = Callable[[Path, int], None]


def learning_rate(step: int, s: TrainSettings) -> float:
    """Linear warmup over s.warmup steps, then a cosine down to s.lr x s.min_lr_ratio at s.steps."""
    if step < s.warmup:
        return s.lr * (step + 1) / s.warmup
    progress = min(1.0, (step - s.warmup) / max(1, s.steps - s.warmup))
    min_lr = s.lr * s.min_lr_ratio
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (s.lr - min_lr)


def get_batch(tokens: Tensor, batch_size: int, n_ctx: int, seed: int, index: int) -> tuple[Tensor, Tensor]:
    """Micro-batch number `index`: random windows, a pure function of (seed, index) so a resume redraws it."""
    block = min(n_ctx, len(tokens) - 1)
    generator = torch.Generator().manual_seed(seed * 1_000_003 + index)
    starts = torch.randint(len(tokens) - block, (batch_size, 1), generator=generator)  # [B, 1]
    windows = tokens[starts + torch.arange(block + 1)]  # [B, block + 1]
    return windows[:, :-1], windows[:, 1:]


def cpu_has_fast_bf16_products() -> bool:
    """Whether torch sends this CPU's bf16 products to oneDNN (AVX-512 and up) rather than its scalar loops."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def optimizer_for(model: GPT, s: TrainSettings) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices and embeddings only, never on biases or LayerNorm gains."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": s.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=s.lr, betas=s.betas, fused=True)  # one kernel for all parameters


def train(
    config: GPTConfig,
    train_tokens: Sequence[int] | Tensor,
    val_tokens: Sequence[int] | Tensor | None,
    settings: TrainSettings,
    *,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    resume: bool = True,
    on_progress: ProgressFn | None = None,
    on_checkpoint: CheckpointFn | None = None,
) -> TrainResult:
    """Train a GPT from scratch, or continue the checkpoint in checkpoint_dir when resume is set.

    on_progress(step, total, metrics) runs after every step; an exception it raises stops training (a
    cancelled job), and the last checkpoint stays. on_checkpoint(path, step) runs after each checkpoint;
    path is checkpoint_dir itself, whose files a worker may copy away and later restore there to resume.
    A resumed run must have the same config; its settings may differ (e.g. more steps), at the cost of
    no longer matching an uninterrupted run.
    """
    s = settings.validate()
    if s.threads > 0:
        torch.set_num_threads(s.threads)
    device = torch.device(s.device)
    train_data = torch.as_tensor(train_tokens, dtype=torch.long)
    val_data = (
        None if val_tokens is None or len(val_tokens) < 2 else torch.as_tensor(val_tokens, dtype=torch.long)
    )
    if len(train_data) < 2:
        raise ValueError("training needs at least 2 tokens")

    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    torch.manual_seed(s.seed)  # the initial weights, the same on every rank
    model = GPT(config).to(device)
    optimizer = optimizer_for(model, s)
    step, data_position, curve, micro_per_step = 0, 0, [], s.grad_accum * world
    ckpt = _checkpoint_to_resume(Path(checkpoint_dir)) if checkpoint_dir is not None and resume else None
    if ckpt is not None:
        step, data_position, curve, micro_per_step = load_checkpoint(ckpt, model, optimizer, device)
    resumed_from = step if ckpt is not None else None
    if micro_per_step % world:
        raise ValueError(f"a step here is {micro_per_step} micro-batches, which {world} processes cannot share "
                         "evenly: resume with a number of processes that divides it")
    local_accum = micro_per_step // world
    # DDP averages gradients over ranks; each rank averages over its own micro-batches: the mean over all M.
    replica = DistributedDataParallel(model) if world > 1 else model

    if s.computes_in == "bf16" and device.type == "cpu" and not cpu_has_fast_bf16_products():
        logger.warning("bf16 on this CPU (no AVX-512, AMX or AVX512-BF16): torch computes its bf16 products in "
                       "scalar loops, far slower than fp32; precision=fp32 or auto trains faster here")
    autocast = (
        torch.autocast(device.type, dtype=torch.bfloat16) if s.computes_in == "bf16" else contextlib.nullcontext()
    )
    started = time.monotonic() - (curve[-1]["elapsed_s"] if curve else 0.0)
    model.train()
    while step < s.steps:
        lr = learning_rate(step, s)
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss_sum = torch.zeros((), device=device)
        for k in range(local_accum):
            x, y = get_batch(train_data, s.batch_size, config.n_ctx, s.seed, data_position + rank * local_accum + k)
            # Gradients are exchanged once per step, after the rank's last micro-batch.
            syncing = world == 1 or k == local_accum - 1
            with contextlib.nullcontext() if syncing else replica.no_sync():
                with autocast:
                    _, loss = replica(x.to(device), y.to(device))
                (loss / local_accum).backward()
            loss_sum += loss.detach()
        data_position += micro_per_step
        if world > 1:
            dist.all_reduce(loss_sum)
        clip_and_step(optimizer, s.clip)
        optimizer.zero_grad(set_to_none=True)
        step += 1

        record = {"step": step, "lr": lr, "train_loss": loss_sum.item() / micro_per_step}
        if val_data is not None and (step % s.eval_interval == 0 or step == s.steps):
            record["val_loss"] = estimate_loss(model, val_data, s, autocast, rank=rank, world=world)
        record["elapsed_s"] = round(time.monotonic() - started, 3)
        curve.append(record)
        if checkpoint_dir is not None and (step % s.checkpoint_interval == 0 or step == s.steps):
            # The replicas hold the same weights: rank 0 writes, the others wait until it is complete.
            if rank == 0:
                path = save_checkpoint(Path(checkpoint_dir), model, optimizer, s, step, data_position, curve,
                                       micro_per_step=micro_per_step)
                if on_checkpoint is not None:
                    on_checkpoint(path, step)
            if world > 1:
                dist.barrier()
        if on_progress is not None:
            on_progress(step, s.steps, record)

    model.eval()
    val_losses = [r["val_loss"] for r in curve if "val_loss" in r]
    return TrainResult(model, curve, val_losses[-1] if val_losses else None, resumed_from)


@torch.no_grad()
def estimate_loss(
    model: GPT, tokens: Tensor, s: TrainSettings, autocast: contextlib.AbstractContextManager, *,
    rank: int = 0, world: int = 1,
) -> float:
    """Mean loss over the same s.eval_batches batches every time, so points on the curve compare; with several
    ranks, each evaluates every world-th batch and the sums are added up."""
    model.eval()
    device = next(model.parameters()).device
    total = torch.zeros((), dtype=torch.float64, device=device)  # NCCL reduces tensors on the device only
    for i in range(rank, s.eval_batches, world):
        x, y = get_batch(tokens, s.batch_size, model.config.n_ctx, s.seed + VAL_SEED_OFFSET, i)
        with autocast:
            total += model(x.to(device), y.to(device))[1].item()
    if world > 1:
        dist.all_reduce(total)
    model.train()
    return total.item() / s.eval_batches


def save_checkpoint(
    directory: Path,
    model: GPT,
    optimizer: torch.optim.AdamW,
    s: TrainSettings,
    step: int,
    data_position: int,
    curve: list[dict],
    *,
    micro_per_step: int | None = None,
) -> Path:
    """Write the checkpoint beside `directory`, then swap it in, so a crash never leaves half a checkpoint."""
    partial, old = (
        directory.with_name(directory.name + ".partial"),
        directory.with_name(directory.name + ".old"),
    )
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    save_safetensors(model, partial / MODEL_FILE)
    names = {id(p): name for name, p in model.named_parameters()}
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    for p, state in optimizer.state.items():
        for key, value in state.items():  # step, exp_avg, exp_avg_sq
            tensors[f"{key}.{names[id(p)]}"] = value.detach().cpu().contiguous()
    save_file(tensors, str(partial / OPTIMIZER_FILE))
    state = {
        "format": CHECKPOINT_FORMAT,
        "step": step,
        "data_position": data_position,
        # What a step is, whatever number of processes resumes it (see the module docstring).
        "micro_batches_per_step": micro_per_step or s.grad_accum,
        "config": model.config.to_hparams(),
        "settings": asdict(s),
        "loss_curve": curve,
    }
    (partial / STATE_FILE).write_text(json.dumps(state))
    shutil.rmtree(old, ignore_errors=True)
    if directory.exists():
        directory.rename(old)
    partial.rename(directory)
    shutil.rmtree(old, ignore_errors=True)
    return directory


def _checkpoint_to_resume(directory: Path) -> Path | None:
    # A crash between the two renames of save_checkpoint leaves the previous checkpoint as ".old".
    for candidate in (directory, directory.with_name(directory.name + ".old")):
        if (candidate / STATE_FILE).is_file():
            return candidate
    return None


def load_checkpoint(
    directory: Path, model: GPT, optimizer: torch.optim.AdamW, device: torch.device
) -> tuple[int, int, list[dict], int]:
    """Restore weights, optimiser moments and RNG states in place; returns (step, data_position, loss curve,
    micro-batches per step)."""
    state = json.loads((directory / STATE_FILE).read_text())
    if state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(
            f"{directory}: checkpoint format {state.get('format')!r}, expected {CHECKPOINT_FORMAT}"
        )
    saved = GPTConfig.from_hparams(state["config"])
    if saved != model.config:
        raise ValueError(f"{directory}: checkpoint is for {saved}, not {model.config}")
    model.load_state_dict(load_safetensors_checked(directory / MODEL_FILE, model.config))
    tensors = load_file(str(directory / OPTIMIZER_FILE))
    names = {id(p): name for name, p in model.named_parameters()}
    optimizer_state = optimizer.state_dict()
    index = 0
    for group in optimizer.param_groups:
        for p in group["params"]:
            optimizer_state["state"][index] = {
                key: tensors[f"{key}.{names[id(p)]}"] for key in ("step", "exp_avg", "exp_avg_sq")
            }
            index += 1
    optimizer.load_state_dict(optimizer_state)
    torch.set_rng_state(tensors["rng.torch"])
    if device.type == "cuda" and "rng.cuda" in tensors:
        torch.cuda.set_rng_state(tensors["rng.cuda"])
    micro_per_step = state.get("micro_batches_per_step", state["settings"]["grad_accum"])
    return state["step"], state["data_position"], state["loss_curve"], micro_per_step


def load_checkpoint_model(directory: str | os.PathLike[str]) -> GPT:
    """The model alone from a checkpoint directory, e.g. to export or sample it mid-training."""
    directory = Path(directory)
    state = json.loads((directory / STATE_FILE).read_text())
    return load_model(directory / MODEL_FILE, GPTConfig.from_hparams(state["config"]))
