"""Training speed against every peer (#22 goal 3): modelcore's training step beside transformers' GPT2LMHeadModel
(SDPA attention) and a nanoGPT-style model with fused AdamW, alternated in one run, at the mini-13m shape and at
GPT-2 124M's; then where modelcore's step spends its time (a profile table, by operator).

Every side trains on the same batches of Tiny Shakespeare's tokens (modelcore's `get_batch`), with forward,
backward, gradient clipping at 1.0 and fused AdamW with weight decay on the matrices, in fp32 and in bf16 mixed
precision: modelcore with `precision="bf16"`, the peers under torch.autocast("cpu", bfloat16), as
transformers' Trainer runs with bf16=True (nanoGPT's own script keeps the CPU in fp32). Each precision is
compared with the faster peer in the same precision; a CPU without bf16 units (AMX, AVX512-BF16) emulates it. The nanoGPT-style
peer is written here from nanoGPT's published design (pre-norm blocks, fused qkv projection, SDPA with
is_causal, tanh GELU, tied output layer, full logits then cross-entropy); no code of it is copied.
Beside the three sides, in each round, a step's dense products alone (products_floor: every linear layer's
forward product and two gradients, as torch runs them, without attention): what any side's step costs at least,
so that the faster peer's step over it bounds the ratio that any training code running those products as torch
does could reach on this machine (modelcore's bf16 products run some of them faster: modelcore/products.py).
Run: .venv/bin/python bench/bench_training_peers.py [--shapes mini-13m gpt2-124m] [--precisions fp32 bf16]
     [--rounds 3 --steps 2]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from modelcore.model import GPTConfig  # noqa: E402
from modelcore.train import TrainSettings, get_batch, optimizer_for, train  # noqa: E402

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "tinyshakespeare" / "input.txt"
# (config, sequences per step, tokens per sequence): the 124M shape at one full context per step, so that a
# step takes seconds, not minutes, on two cores.
SHAPES = {
    "mini-13m": (GPTConfig(n_vocab=8192, n_ctx=256, n_embd=320, n_head=5, n_layer=8), 16, 256),
    "gpt2-124m": (GPTConfig(n_vocab=50257, n_ctx=1024, n_embd=768, n_head=12, n_layer=12), 1, 1024),
}
SEED, GOAL = 1337, 1.25
FLOOR = "products alone"  # a step's dense products, timed on their own beside the sides (products_floor)


class _Block(nn.Module):
    def __init__(self, c: GPTConfig) -> None:
        super().__init__()
        self.n_head = c.n_head
        self.ln_1, self.ln_2 = nn.LayerNorm(c.n_embd), nn.LayerNorm(c.n_embd)
        self.c_attn, self.attn_proj = nn.Linear(c.n_embd, 3 * c.n_embd), nn.Linear(c.n_embd, c.n_embd)
        self.c_fc, self.mlp_proj = nn.Linear(c.n_embd, 4 * c.n_embd), nn.Linear(4 * c.n_embd, c.n_embd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, width = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(width, dim=2)
        q, k, v = (z.view(b, t, self.n_head, width // self.n_head).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, width)
        x = x + self.attn_proj(y)
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class NanoGPTStyle(nn.Module):
    def __init__(self, c: GPTConfig) -> None:
        super().__init__()
        self.wte, self.wpe = nn.Embedding(c.n_vocab, c.n_embd), nn.Embedding(c.n_ctx, c.n_embd)
        self.h = nn.ModuleList(_Block(c) for _ in range(c.n_layer))
        self.ln_f = nn.LayerNorm(c.n_embd)
        for name, p in self.named_parameters():
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * c.n_layer) if name.endswith("proj.weight") else 0.02
                nn.init.normal_(p, std=std)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
        for block in self.h:
            x = block(x)
        logits = F.linear(self.ln_f(x), self.wte.weight)  # tied output layer
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.reshape(-1))


def _fused_adamw(model: nn.Module) -> torch.optim.AdamW:
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=6e-4, betas=(0.9, 0.95), fused=True)


def peer_step_times(step_fn, model: nn.Module, optimizer, tokens, batch: int, seq: int, steps: int,
                    precision: str) -> list[float]:
    model.train()
    times = []
    for step in range(steps + 1):  # the first, a warm-up, is dropped
        start = time.perf_counter()
        x, y = get_batch(tokens, batch, seq, SEED, step)
        with torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext():
            loss = step_fn(model, x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss.item()
        times.append(time.perf_counter() - start)
    return times[1:]


def _settings(batch: int, steps: int, precision: str) -> TrainSettings:
    return TrainSettings(steps=steps, batch_size=batch, lr=6e-4, warmup=1, clip=1.0, eval_interval=10**9,
                         checkpoint_interval=10**9, seed=SEED, precision=precision)


def modelcore_step_times(config: GPTConfig, tokens, batch: int, steps: int, precision: str) -> list[float]:
    stamps = []
    train(config, tokens, None, _settings(batch, steps + 1, precision),
          on_progress=lambda *_: stamps.append(time.perf_counter()))
    return [b - a for a, b in zip(stamps, stamps[1:], strict=False)]


def _dense_products(config: GPTConfig) -> list[tuple[int, int, int]]:
    """(inputs, outputs, times a step) of every dense layer a GPT-2 training step multiplies by: each block's
    four linears and the tied output layer (attention's own products excluded)."""
    c = config.n_embd
    block = [(c, 3 * c), (c, c), (c, 4 * c), (4 * c, c)]
    return [(i, o, config.n_layer) for i, o in block] + [(c, config.n_vocab, 1)]


def products_floor(config: GPTConfig, batch: int, seq: int, precision: str, repeats: int = 3) -> float:
    """Seconds a step's dense products take on their own in this BLAS: for every linear layer its forward
    product, its input gradient and its weight gradient, as torch runs them, the output layer included.
    No implementation that runs these products as torch does (the peers do) steps faster than this, so the
    faster peer's step over it bounds the ratio such training code could reach on this machine."""
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    n = batch * seq
    gen = torch.Generator().manual_seed(SEED)
    best = math.inf
    operands = {(i, o): (torch.randn(n, i, generator=gen).to(dtype), torch.randn(o, i, generator=gen).to(dtype),
                         torch.randn(n, o, generator=gen).to(dtype)) for i, o, _ in _dense_products(config)}
    for attempt in range(repeats + 1):  # the first pass warms the BLAS and the pages up
        start = time.perf_counter()
        for i, o, count in _dense_products(config):
            x, w, g = operands[i, o]
            for _ in range(count):
                F.linear(x, w)  # forward
                g @ w  # the input's gradient
                g.t() @ x  # the weight's gradient
        if attempt:
            best = min(best, time.perf_counter() - start)
    return best


def profile_table(config: GPTConfig, tokens, batch: int, precision: str, rows: int = 12) -> str:
    """modelcore's step by operator (self CPU time over two steps after two first ones), as a markdown table."""
    from torch.profiler import ProfilerActivity, profile, schedule

    # Steady steps only: set-up and the first two steps fall in the schedule's wait (initialisation, the bf16
    # products' timing, and at 124M ~90,000 page faults in the second step as the kept memory fills in).
    with profile(activities=[ProfilerActivity.CPU], schedule=schedule(wait=2, warmup=0, active=2)) as prof:
        train(config, tokens, None, _settings(batch, 4, precision), on_progress=lambda *_: prof.step())
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    lines = ["| operator | share of the step | calls |", "|---|---|---|"]
    lines += [f"| `{e.key}` | {e.self_cpu_time_total / total:.1%} | {e.count} |" for e in events[:rows]]
    rest = sum(e.self_cpu_time_total for e in events[rows:])
    lines.append(f"| everything else | {rest / total:.1%} | |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", choices=list(SHAPES), default=list(SHAPES))
    parser.add_argument("--steps", type=int, default=2, help="timed steps per round, after one warm-up step")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--precisions", nargs="+", choices=["fp32", "bf16"], default=["fp32", "bf16"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-profile", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from transformers import GPT2Config, GPT2LMHeadModel

    from modelcore.tokenizer import train_tokenizer

    if not CORPUS.is_file():
        sys.exit(f"{CORPUS} is missing: the benchmark trains on it")
    text = CORPUS.read_text(encoding="utf-8")
    results = []
    for shape in args.shapes:
        config, batch, seq = SHAPES[shape]
        tokenizer = train_tokenizer([text], min(config.n_vocab, 8192))  # 124M's vocabulary: ids stay below 8192
        tokens = torch.tensor(tokenizer.encode(text))
        torch.manual_seed(SEED)
        hf = GPT2LMHeadModel(GPT2Config(vocab_size=config.n_vocab, n_positions=config.n_ctx, n_embd=config.n_embd,
                                        n_layer=config.n_layer, n_head=config.n_head, attn_implementation="sdpa"))
        nano = NanoGPTStyle(config)
        hf_opt = optimizer_for(hf, TrainSettings(lr=6e-4))  # the same decay groups, fused AdamW
        nano_opt = _fused_adamw(nano)
        sides = ("modelcore", "transformers", "nanoGPT-style", FLOOR)
        times: dict[tuple[str, str], list[float]] = {(p, side): [] for p in args.precisions for side in sides}
        for _ in range(args.rounds):
            for p in args.precisions:
                times[p, "transformers"] += peer_step_times(lambda m, x, y: m(input_ids=x, labels=x).loss, hf, hf_opt,
                                                            tokens, batch, seq, args.steps, p)
                times[p, "nanoGPT-style"] += peer_step_times(lambda m, x, y: m(x, y), nano, nano_opt, tokens, batch,
                                                             seq, args.steps, p)
                times[p, "modelcore"] += modelcore_step_times(config, tokens, batch, args.steps, p)
                times[p, FLOOR].append(products_floor(config, batch, seq, p, repeats=args.steps))
        best = {key: min(values) for key, values in times.items()}
        tokens_per_step = batch * seq
        print(f"{shape}: batch {batch} x {seq} tokens, {torch.get_num_threads()} threads, best of "
              f"{args.rounds} x {args.steps} alternated steps")
        for (p, name), seconds in best.items():
            print(f"  {p} {name:>14} {seconds:7.2f} s/step {tokens_per_step / seconds:9.0f} tokens/s")
        for p in args.precisions:
            faster_peer = min(best[p, "transformers"], best[p, "nanoGPT-style"])
            results.append({"benchmark": f"training_{shape}_{p}_vs_faster_peer_{p}",
                            "ours": round(tokens_per_step / best[p, "modelcore"], 1),
                            "peer": round(tokens_per_step / faster_peer, 1), "unit": "tokens/s",
                            "ratio": round(faster_peer / best[p, "modelcore"], 3), "goal": GOAL})
        for p in args.precisions:
            floor, faster_peer = best[p, FLOOR], min(best[p, "transformers"], best[p, "nanoGPT-style"])
            print(f"  {p}: modelcore's step takes {best[p, 'modelcore'] / floor:.2f}x its dense products alone, the "
                  f"faster peer's {faster_peer / floor:.2f}x: no code that runs those products as torch runs them "
                  f"could be more than {faster_peer / floor:.2f}x the faster peer on this machine")
        if "bf16" in args.precisions and "fp32" in args.precisions:
            fp32_peer = min(best["fp32", "transformers"], best["fp32", "nanoGPT-style"])
            print(f"  modelcore bf16 against the faster peer in fp32 (as nanoGPT's script trains on a CPU): "
                  f"{fp32_peer / best['bf16', 'modelcore']:.2f}x")
        if not args.no_profile:
            for p in args.precisions:
                print(f"where modelcore's {shape} step goes in {p} (self CPU time, two steps):")
                print(profile_table(config, tokens, batch, p))
    for line in results:
        print(json.dumps(line))


if __name__ == "__main__":
    main()
