"""Dataset generation on a CUDA device, as a `device=cuda` job samples: modelcore's `generate` (bf16 autocast,
bf16 KV cache) beside transformers' `generate` on the same device in bf16, GPT-2 124M's shape (12 layers, 768
wide, vocab 50,257), unconditional samples of 128 tokens, top-k 40 and pure sampling, at a shard's batch sizes.
Random weights on both sides: speed does not depend on their values, and neither side stops early.
Run on a GPU machine: python3 bench/bench_generation_cuda.py
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from modelcore.model import GPT, GPTConfig  # noqa: E402
from modelcore.sample import generate  # noqa: E402

CONFIG = GPTConfig(n_vocab=50257, n_ctx=1024, n_embd=768, n_head=12, n_layer=12)
NEW_TOKENS, EOT = 128, 50256


def _best(fn, repeats: int) -> float:
    fn()
    torch.cuda.synchronize()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32, 100])
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("no CUDA device: run this on a GPU machine")
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    ours = GPT(CONFIG).eval()
    theirs = GPT2LMHeadModel(GPT2Config(vocab_size=CONFIG.n_vocab, n_positions=CONFIG.n_ctx, n_embd=CONFIG.n_embd,
                                        n_layer=CONFIG.n_layer, n_head=CONFIG.n_head)).to("cuda", torch.bfloat16).eval()
    theirs.generation_config.eos_token_id = None

    def modelcore(batch: int, top_k: int) -> None:
        samples = list(generate(ours, n_samples=batch, batch_size=batch, max_new_tokens=NEW_TOKENS, top_k=top_k,
                                seed=1, prompt_tokens=[EOT], eot_id=None, device="cuda", fused_step=False))
        assert len(samples) == batch and all(s.length == NEW_TOKENS for s in samples)

    def transformers(batch: int, top_k: int) -> None:
        ids = torch.full((batch, 1), EOT, device="cuda")
        with torch.inference_mode():
            theirs.generate(ids, attention_mask=torch.ones_like(ids), do_sample=True, top_k=top_k or None,
                            max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, pad_token_id=EOT, use_cache=True)

    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, GPT-2 124M shape, {NEW_TOKENS} new tokens, "
          f"bf16, best of {args.repeats}")
    print(f"{'sampling':>8} {'batch':>5} {'transformers samples/s':>23} {'modelcore samples/s':>20} {'ratio':>6}")
    results = []
    for top_k, name in ((40, "top-k 40"), (0, "pure")):
        for batch in args.batches:
            mine = _best(lambda b=batch, k=top_k: modelcore(b, k), args.repeats)
            ref = _best(lambda b=batch, k=top_k: transformers(b, k), args.repeats)
            print(f"{name:>8} {batch:>5} {batch / ref:>23.1f} {batch / mine:>20.1f} {ref / mine:>5.2f}x")
            results.append({"benchmark": f"cuda_generation_124m_{'k40' if top_k else 'pure'}_batch{batch}",
                            "ours": round(batch / mine, 2), "peer": round(batch / ref, 2), "unit": "samples/s",
                            "ratio": round(ref / mine, 3), "goal": None})
    for line in results:
        print(json.dumps(line))


if __name__ == "__main__":
    main()
