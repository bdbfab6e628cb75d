"""Training speed: modelcore's training loop vs transformers' GPT2LMHeadModel, identical weights, same run.

6 layers / 384 dims / 6 heads / vocab 8192 / n_ctx 256, batch 16 x 256 tokens, fp32, forward + backward +
gradient clipping + fused AdamW on both sides (fused AdamW is the HF Trainer's default optimiser).
Also reports the achieved FLOP/s against a measured matmul peak.
Run: .venv/bin/python bench/bench_training.py [--rounds 3 --steps 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from modelcore.export import export_hf  # noqa: E402
from modelcore.model import GPT, GPTConfig  # noqa: E402
from modelcore.tokenizer import train_tokenizer  # noqa: E402
from modelcore.train import TrainSettings, optimizer_for, train  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_training_peers import SEED, peer_step_times  # noqa: E402

CORPUS = Path(__file__).resolve().parents[1] / "../shared/corpora/tinyshakespeare/input.txt"
CONFIG = GPTConfig(n_vocab=8192, n_ctx=256, n_embd=384, n_head=6, n_layer=6)
BATCH, GOAL = 16, 1.1


def matmul_peak(threads: int, size: int = 2048, repeats: int = 5) -> float:
    """Best fp32 FLOP/s of a large square matmul: what this CPU's BLAS can do at all."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * size**3 / best


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def flops_per_token(c: GPTConfig) -> float:
    """Training FLOPs per token: 6 x matmul parameters (blocks and output layer) + attention (PaLM, app. B)."""
    matmul_params = c.n_layer * 12 * c.n_embd**2 + c.n_vocab * c.n_embd
    return 6 * matmul_params + 12 * c.n_layer * c.n_embd * c.n_ctx


def modelcore_step_times(tokens: torch.Tensor, steps: int) -> list[float]:
    """Per-step wall times of modelcore.train itself (the first step, a warm-up, is dropped)."""
    stamps = []
    settings = TrainSettings(steps=steps + 1, batch_size=BATCH, lr=6e-4, warmup=1, clip=1.0, eval_interval=10**9,
                             checkpoint_interval=10**9, seed=SEED)  # fmt: skip
    train(CONFIG, tokens, None, settings, on_progress=lambda *_: stamps.append(time.perf_counter()))
    return [b - a for a, b in zip(stamps, stamps[1:], strict=False)]


def transformers_step_times(reference, tokens: torch.Tensor, steps: int) -> list[float]:
    # The same batches, decay groups and fused AdamW; the model computes its own (shifted) loss from labels.
    optimizer = optimizer_for(reference, TrainSettings(lr=6e-4))
    return peer_step_times(lambda m, x, y: m(input_ids=x, labels=x).loss, reference, optimizer, tokens, BATCH,
                           CONFIG.n_ctx, steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2, help="timed steps per round, after one warm-up step")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from transformers import GPT2LMHeadModel

    if not CORPUS.is_file():
        sys.exit(f"{CORPUS} is missing: the benchmark trains on it")
    text = CORPUS.read_text(encoding="utf-8")
    tokenizer = train_tokenizer([text], CONFIG.n_vocab)
    tokens = torch.tensor(tokenizer.encode(text))
    torch.manual_seed(SEED)  # modelcore.train initialises from this seed; the reference gets the same weights
    with tempfile.TemporaryDirectory() as tmp:
        export_hf(GPT(CONFIG), tokenizer, tmp)
        reference = GPT2LMHeadModel.from_pretrained(tmp, attn_implementation="sdpa")

    peak = matmul_peak(args.threads)
    # Alternate the two and keep each one's best step: on a shared CPU, the least-disturbed figure.
    their_times, our_times = [], []
    for _ in range(args.rounds):
        their_times += transformers_step_times(reference, tokens, args.steps)
        our_times += modelcore_step_times(tokens, args.steps)
    theirs, ours = min(their_times), min(our_times)
    tokens_per_step = BATCH * CONFIG.n_ctx
    flops = flops_per_token(CONFIG) * tokens_per_step
    print(f"threads {torch.get_num_threads()}, torch {torch.__version__}, batch {BATCH} x {CONFIG.n_ctx} tokens, "
          f"fp32, best of {args.rounds} x {args.steps} alternated steps")  # fmt: skip
    print(f"{'':>13} {'s/step':>7} {'tokens/s':>9} {'GFLOP/s':>8} {'of peak':>8}")
    for name, seconds in (("transformers", theirs), ("modelcore", ours)):
        print(f"{name:>13} {seconds:>7.2f} {tokens_per_step / seconds:>9.0f} {flops / seconds / 1e9:>8.1f} "
              f"{flops / seconds / peak:>7.0%}")  # fmt: skip
    ratio = theirs / ours
    print(
        f"matmul peak (2048^3 fp32): {peak / 1e9:.1f} GFLOP/s; {flops_per_token(CONFIG) / 1e6:.1f} MFLOP/token"
    )
    print(f"ratio {ratio:.2f}x (goal {GOAL}x): {'goal met' if ratio >= GOAL else 'GOAL NOT MET'}")


if __name__ == "__main__":
    main()
