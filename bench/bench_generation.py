"""Dataset generation on CPU as the jobs run it (#22 goal 1): a shard's call to modelcore's `generate` (its batch
of 25 and the shard's settings: each step after the prompt in one native call, modelcore/fused.py) beside
transformers' `generate` at the same batch size, fp32, unconditional samples of 128 tokens that never stop early,
top-k 40 and pure sampling, at the mini-13m shape and at GPT-2 124M's. Random weights on both sides: speed does
not depend on their values. Alternated, best of --repeats.
Run: .venv/bin/python bench/bench_generation.py [--shapes mini-13m gpt2-124m] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from modelcore import kernels  # noqa: E402
from modelcore.model import GPT, GPTConfig  # noqa: E402
from modelcore.sample import generate  # noqa: E402

SHAPES = {
    "mini-13m": GPTConfig(n_vocab=8192, n_ctx=256, n_embd=320, n_head=5, n_layer=8),
    "gpt2-124m": GPTConfig(n_vocab=50257, n_ctx=1024, n_embd=768, n_head=12, n_layer=12),
}
SHARD_BATCH = 25  # workers.generation.GENERATION_BATCH: a shard samples 25 at a time
NEW_TOKENS = 128  # a generation job's default max_length
GOAL = 2.5


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", choices=list(SHAPES), default=list(SHAPES))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=SHARD_BATCH)
    args = parser.parse_args()
    from transformers import GPT2Config, GPT2LMHeadModel

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, fp32, batch {args.batch}, "
          f"{NEW_TOKENS} new tokens, best of {args.repeats} alternated")
    print(f"{'shape':>10} {'sampling':>8} {'transformers samples/s':>23} {'modelcore (shard path) samples/s':>33} "
          f"{'ratio':>6}")
    results = []
    for shape in args.shapes:
        config = SHAPES[shape]
        eot = config.n_vocab - 1
        torch.manual_seed(0)
        ours = GPT(config).eval()
        theirs = GPT2LMHeadModel(GPT2Config(vocab_size=config.n_vocab, n_positions=config.n_ctx,
                                            n_embd=config.n_embd, n_layer=config.n_layer,
                                            n_head=config.n_head)).eval()
        theirs.generation_config.eos_token_id = None

        def modelcore(top_k: int, ours=ours, eot=eot) -> None:
            samples = list(generate(ours, n_samples=args.batch, batch_size=args.batch, max_new_tokens=NEW_TOKENS,
                                    top_k=top_k, seed=1, prompt_tokens=[eot], eot_id=None,
                                    layout=kernels.FIXED_LAYOUT))
            assert len(samples) == args.batch and all(s.length == NEW_TOKENS for s in samples)

        def transformers(top_k: int, theirs=theirs, eot=eot) -> None:
            ids = torch.full((args.batch, 1), eot)
            with torch.inference_mode():
                theirs.generate(ids, attention_mask=torch.ones_like(ids), do_sample=True, top_k=top_k or None,
                                max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, pad_token_id=eot,
                                use_cache=True)

        for top_k, name in ((40, "top-k 40"), (0, "pure")):
            modelcore(top_k)
            transformers(top_k)  # warm-up, both
            mine, ref = float("inf"), float("inf")
            for _ in range(args.repeats):
                mine = min(mine, _seconds(lambda k=top_k: modelcore(k)))
                ref = min(ref, _seconds(lambda k=top_k: transformers(k)))
            print(f"{shape:>10} {name:>8} {args.batch / ref:>23.2f} {args.batch / mine:>33.2f} {ref / mine:>5.2f}x",
                  flush=True)
            results.append({"benchmark": f"generation_{shape}_{'k40' if top_k else 'pure'}_batch{args.batch}",
                            "ours": round(args.batch / mine, 3), "peer": round(args.batch / ref, 3),
                            "unit": "samples/s", "ratio": round(ref / mine, 3), "goal": GOAL})
    for line in results:
        print(json.dumps(line))


if __name__ == "__main__":
    main()
