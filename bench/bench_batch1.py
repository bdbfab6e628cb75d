"""Batch-1 sampling at GPT-2 124M's shape (#22 goal 2): modelcore fp32 against the ceiling a bare read of the
weights sets, and modelcore's opt-in int8 weights against transformers fp32; then WikiText-2 perplexity of a
trained mini size with int8 weights against the same model in fp32.

Speed: random weights (speed does not depend on their values), 12 layers / 768 wide / vocab 50,257 / n_ctx 1,024,
one sample of --tokens new tokens after <|endoftext|>, top-k 40, never stopping early; modelcore's `generate` as
`python -m modelcore sample --batch-size 1` runs it (the native step), transformers' `generate` with its KV cache.
The bare read: every matrix a token multiplies by (all but the position table, of which a step reads one row)
summed by torch in --threads threads, nothing else; 1 / its time is the ceiling on tokens per second for an fp32
implementation reading the weights once per token, as far as this read shows it (a faster read would raise it).
Alternated with the sampling, best of --repeats.

Perplexity: a mini size trained here with modelcore (--ppl-size, --train-steps, Tiny Shakespeare; or an exported
model directory with --model), scored on WikiText-2's test split as the evaluate job scores it (detokenised,
per WikiText token), in fp32 and with int8 weights (the dequantized model: the values int8 sampling uses).
Run: .venv/bin/python bench/bench_batch1.py [--repeats 5] [--tokens 128] [--skip-ppl]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from modelcore import native, quantize  # noqa: E402
from modelcore.evaluate import evaluate_text  # noqa: E402
from modelcore.model import GPT, GPTConfig  # noqa: E402
from modelcore.sample import generate  # noqa: E402
from modelcore.wikitext import wikitext_detokenize, wikitext_tokens  # noqa: E402

GPT2_124M = GPTConfig(n_vocab=50257, n_ctx=1024, n_embd=768, n_head=12, n_layer=12)
MINI = {  # registry/seed_data.py's mini family
    "mini-1m": GPTConfig(n_vocab=8192, n_ctx=256, n_embd=128, n_head=2, n_layer=2),
    "mini-3m": GPTConfig(n_vocab=8192, n_ctx=256, n_embd=192, n_head=3, n_layer=4),
    "mini-7m": GPTConfig(n_vocab=8192, n_ctx=256, n_embd=256, n_head=4, n_layer=6),
    "mini-13m": GPTConfig(n_vocab=8192, n_ctx=256, n_embd=320, n_head=5, n_layer=8),
}
CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora"
GOAL_CEILING, GOAL_INT8, GOAL_PPL = 0.9, 2.5, 1.01
TOP_K = 40


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def best_alternated(fns: dict, repeats: int) -> dict[str, float]:
    for fn in fns.values():
        fn()  # warm-up: allocator, kernels, the native build, int8 weights
    best = dict.fromkeys(fns, math.inf)
    for _ in range(repeats):
        for name, fn in fns.items():
            best[name] = min(best[name], _seconds(fn))
    return best


def speed(args) -> list[dict]:
    from transformers import GPT2Config, GPT2LMHeadModel

    c = GPT2_124M
    eot = c.n_vocab - 1
    torch.manual_seed(0)
    ours = GPT(c).eval()
    theirs = GPT2LMHeadModel(GPT2Config(vocab_size=c.n_vocab, n_positions=c.n_ctx, n_embd=c.n_embd,
                                        n_layer=c.n_layer, n_head=c.n_head)).eval()
    theirs.generation_config.eos_token_id = None
    matrices = [p.detach() for name, p in ours.named_parameters() if p.dim() == 2 and name != "wpe.weight"]
    fp32_bytes = sum(m.numel() * m.element_size() for m in matrices)
    int8_bytes = sum(m.nbytes for m in quantize.with_weights(ours, "int8")[1].values())

    def modelcore(weights: str) -> None:
        [sample] = generate(ours, n_samples=1, batch_size=1, max_new_tokens=args.tokens, top_k=TOP_K, seed=1,
                            prompt_tokens=[eot], eot_id=None, weights=weights)
        assert sample.length == args.tokens

    def transformers() -> None:
        ids = torch.full((1, 1), eot)
        with torch.inference_mode():
            out = theirs.generate(ids, attention_mask=torch.ones_like(ids), do_sample=True, top_k=TOP_K,
                                  max_new_tokens=args.tokens, min_new_tokens=args.tokens, pad_token_id=eot,
                                  use_cache=True)
        assert out.shape == (1, 1 + args.tokens)

    reads = args.tokens  # as many passes over the weights as the sampling makes, so both runs last as long

    def bare_read() -> None:
        for _ in range(reads):
            for m in matrices:
                m.sum()

    best = best_alternated({"fp32": lambda: modelcore("fp32"), "int8": lambda: modelcore("int8"),
                            "transformers": transformers, "read": bare_read}, args.repeats)
    rate = {name: args.tokens / best[name] for name in ("fp32", "int8", "transformers")}
    ceiling = reads / best["read"]
    path = "the native step" if native.unavailable_reason() is None else f"torch ({native.unavailable_reason()})"
    print(f"GPT-2 124M shape, batch 1, {args.tokens} new tokens, top-k {TOP_K}, {torch.get_num_threads()} threads, "
          f"best of {args.repeats} alternated; modelcore's tokens after the prompt through {path}")
    print(f"  bare read of the fp32 matrices: {fp32_bytes / 1e6:.0f} MB in {best['read'] / reads * 1e3:.2f}"
          f" ms ({fp32_bytes * ceiling / 1e9:.1f} GB/s) = ceiling {ceiling:.1f} tok/s")
    print(f"  transformers fp32        {rate['transformers']:8.1f} tok/s")
    print(f"  modelcore fp32           {rate['fp32']:8.1f} tok/s  = {rate['fp32'] / ceiling:.0%} of the ceiling, "
          f"{rate['fp32'] / rate['transformers']:.2f}x transformers")
    print(f"  modelcore int8 weights   {rate['int8']:8.1f} tok/s  = {rate['int8'] / rate['transformers']:.2f}x "
          f"transformers fp32 ({int8_bytes / 1e6:.0f} MB of weights a token)")
    return [
        {"benchmark": "batch1_gpt2_124m_fp32_vs_bare_read_ceiling", "ours": round(rate["fp32"], 2),
         "peer": round(ceiling, 2), "unit": "tok/s", "ratio": round(rate["fp32"] / ceiling, 3), "goal": GOAL_CEILING},
        {"benchmark": "batch1_gpt2_124m_int8_weights_vs_transformers_fp32", "ours": round(rate["int8"], 2),
         "peer": round(rate["transformers"], 2), "unit": "tok/s", "ratio": round(rate["int8"] / rate["transformers"], 3),
         "goal": GOAL_INT8},
    ]


def _trained(args):
    from modelcore.export import import_hf
    from modelcore.tokenizer import train_tokenizer
    from modelcore.train import TrainSettings, train

    if args.model:
        model, tokenizer, _config = import_hf(args.model)
        return model, tokenizer, str(args.model)
    corpus = CORPORA / "tinyshakespeare" / "input.txt"
    if not corpus.is_file():
        sys.exit(f"{corpus} is missing: the perplexity check trains on it (or give --model DIR)")
    config = MINI[args.ppl_size]
    text = corpus.read_text(encoding="utf-8")
    tokenizer = train_tokenizer([text], config.n_vocab)
    tokens = tokenizer.encode(text)
    split = int(len(tokens) * 0.9)
    started = time.perf_counter()
    result = train(config, tokens[:split], tokens[split:], TrainSettings(
        steps=args.train_steps, batch_size=16, lr=3e-3 * 128 / config.n_embd, warmup=max(1, args.train_steps // 10),
        eval_interval=args.train_steps, checkpoint_interval=args.train_steps + 1, seed=0))
    print(f"trained {args.ppl_size} for {args.train_steps} steps in {time.perf_counter() - started:.0f} s: "
          f"validation loss {result.final_val_loss:.3f}")
    return result.model.eval(), tokenizer, f"{args.ppl_size}, {args.train_steps} steps on Tiny Shakespeare"


def perplexity(args) -> list[dict]:
    raw_path = CORPORA / "wikitext-2" / "test.txt"
    if not raw_path.is_file():
        sys.exit(f"{raw_path} is missing: the perplexity check scores it")
    model, tokenizer, what = _trained(args)
    raw = raw_path.read_text(encoding="utf-8")
    text, words = wikitext_detokenize(raw), wikitext_tokens(raw)
    ppl = {}
    for weights in ("fp32", "int8"):
        scored, _int8 = quantize.with_weights(model, weights)
        report = evaluate_text(scored, tokenizer, text, stride=model.config.n_ctx // 2, batch_size=8)
        ppl[weights] = math.exp(report.loss * report.tokens / words)
    change = ppl["int8"] / ppl["fp32"]
    apart = max(change, 1 / change)  # within 1% either way
    print(f"WikiText-2 test perplexity (per WikiText token, {words:,} of them) of {what}: fp32 {ppl['fp32']:,.2f}, "
          f"int8 weights {ppl['int8']:,.2f} ({change - 1:+.3%}; goal within 1%)")
    return [{"benchmark": f"wikitext2_perplexity_int8_weights_vs_fp32_{args.ppl_size if not args.model else 'model'}",
             "ours": round(ppl["int8"], 3), "peer": round(ppl["fp32"], 3), "unit": "perplexity (lower is better)",
             "ratio": round(apart, 5), "goal": GOAL_PPL}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ppl-size", choices=list(MINI), default="mini-1m")
    parser.add_argument("--train-steps", type=int, default=300)
    parser.add_argument("--model", type=Path, default=None, help="an exported model directory to score instead")
    parser.add_argument("--skip-ppl", action="store_true")
    parser.add_argument("--skip-speed", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lines = [] if args.skip_speed else speed(args)
    if not args.skip_ppl:
        lines += perplexity(args)
    for line in lines:  # the perplexities' ratio (the larger over the smaller) at or under its goal; the others over
        print(json.dumps(line))


if __name__ == "__main__":
    main()
