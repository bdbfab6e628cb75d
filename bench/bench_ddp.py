"""Data-parallel training throughput: the single-process training job beside DDP (modelcore/data_parallel.py) with
1 and 2 gloo processes on this host, the same global batch (2 micro-batches of 8 × 256 tokens per step) and the
same cores in each run, plus the all-reduce that DDP adds per step, measured alone.

From those figures it states how a step should scale over hosts: each of N hosts computes 1/N of the step, and
a ring all-reduce moves 2(N-1)/N × the gradient bytes through each host's link, so
    step(N) ≈ compute / N + 2(N-1)/N × bytes / bandwidth + latency.
Run: .venv/bin/python bench/bench_ddp.py [--steps 6]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from modelcore.data_parallel import Rendezvous, free_port, train_data_parallel  # noqa: E402
from modelcore.model import GPT, GPTConfig  # noqa: E402
from modelcore.train import TrainSettings, train  # noqa: E402

CONFIG = GPTConfig(n_vocab=8192, n_ctx=256, n_embd=384, n_head=6, n_layer=6)  # the mini-13m shape
BATCH, MICRO_PER_STEP, SEED = 8, 2, 1337


def _tokens() -> torch.Tensor:
    return torch.randint(CONFIG.n_vocab, (400_000,), generator=torch.Generator().manual_seed(SEED))


def _settings(steps: int, grad_accum: int, threads: int) -> TrainSettings:
    return TrainSettings(steps=steps + 1, batch_size=BATCH, lr=6e-4, warmup=1, grad_accum=grad_accum,
                         eval_interval=10**9, checkpoint_interval=10**9, seed=SEED, threads=threads)


def _seconds_per_step(run, steps: int) -> float:
    """Best step time of a run, the first (warm-up) step dropped."""
    stamps: list[float] = []
    run(lambda *_: stamps.append(time.perf_counter()))
    return min(b - a for a, b in zip(stamps, stamps[1:], strict=False))


def _allreduce_worker(rank: int, world: int, port: int, numel: int, repeats: int, out) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world,
                            timeout=timedelta(seconds=120))
    flat = torch.ones(numel)
    dist.all_reduce(flat)
    best = float("inf")
    for _ in range(repeats):
        dist.barrier()
        start = time.perf_counter()
        dist.all_reduce(flat)
        best = min(best, time.perf_counter() - start)
    if rank == 0:
        out.put(best)
    dist.destroy_process_group()


def allreduce_seconds(numel: int, repeats: int = 5) -> float:
    context = mp.get_context("spawn")
    out = context.Queue()
    mp.start_processes(_allreduce_worker, args=(2, free_port(), numel, repeats, out), nprocs=2, join=True,
                       start_method="spawn")
    return out.get()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    tokens = _tokens()
    tokens_per_step = BATCH * CONFIG.n_ctx * MICRO_PER_STEP
    n_params = sum(p.numel() for p in GPT(CONFIG).parameters())
    with tempfile.TemporaryDirectory() as tmp:
        job = _seconds_per_step(lambda beat: train(
            CONFIG, tokens, None, _settings(args.steps, MICRO_PER_STEP, cores), on_progress=beat), args.steps)
        one = _seconds_per_step(lambda beat: train_data_parallel(
            CONFIG, tokens, None, _settings(args.steps, MICRO_PER_STEP, cores), Rendezvous(nproc=1),
            work_dir=f"{tmp}/one", checkpoint_dir=f"{tmp}/one-ckpt", on_progress=beat), args.steps)
        two = _seconds_per_step(lambda beat: train_data_parallel(
            CONFIG, tokens, None, _settings(args.steps, 1, max(1, cores // 2)), Rendezvous(nproc=2),
            work_dir=f"{tmp}/two", checkpoint_dir=f"{tmp}/two-ckpt", on_progress=beat), args.steps)
    reduce_s = allreduce_seconds(n_params)
    grad_mb = n_params * 4 / 1e6
    print(f"{cores} cores, torch {torch.__version__}, {n_params / 1e6:.1f}M parameters, global batch "
          f"{MICRO_PER_STEP} x {BATCH} x {CONFIG.n_ctx} = {tokens_per_step:,} tokens/step, best of {args.steps} steps")
    print(f"{'':>24} {'s/step':>7} {'tokens/s':>9}")
    for name, seconds in (("single-process job", job), ("DDP, 1 process", one), ("DDP, 2 processes (gloo)", two)):
        print(f"{name:>24} {seconds:>7.2f} {tokens_per_step / seconds:>9.0f}")
    print(f"all-reduce of the gradients alone (gloo, 2 processes, {grad_mb:.1f} MB fp32): {reduce_s * 1000:.1f} ms "
          f"= {reduce_s / two:.0%} of the 2-process step")
    compute = job  # the whole step's compute, on all the cores
    print("Expected step time on N hosts like this one (compute / N + ring all-reduce of "
          f"{grad_mb:.1f} MB over a 10 Gbit/s link, 2(N-1)/N x bytes):")
    for hosts in (1, 2, 4, 8):
        network = 0 if hosts == 1 else 2 * (hosts - 1) / hosts * n_params * 4 / (10e9 / 8)
        step = compute / hosts + network
        print(f"  N={hosts}: {step:.2f} s/step, {tokens_per_step / step:.0f} tokens/s")
    for benchmark, ours in (("ddp_1proc_vs_training_job", one), ("ddp_2proc_vs_training_job", two)):
        print(json.dumps({"benchmark": benchmark, "ours": round(tokens_per_step / ours, 1),
                          "peer": round(tokens_per_step / job, 1), "unit": "tokens/s",
                          "ratio": round(job / ours, 3), "goal": None}))


if __name__ == "__main__":
    main()
