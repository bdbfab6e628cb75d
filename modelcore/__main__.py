"""Command line: `python -m modelcore train|sample|eval|export`, usable without Django."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

VAL_FRACTION = 0.1  # the tail of the corpus held out for validation


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modelcore", description="The bundled GPT-2 in torch.")
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("train", help="train a tokenizer and a GPT on a text file; write the HF layout")
    p.add_argument("--corpus", type=Path, required=True, help="UTF-8 text; its last 10%% is held out")
    p.add_argument("--out", type=Path, required=True, help="model directory (checkpoints in OUT/checkpoint)")
    p.add_argument("--vocab-size", type=int, default=4096)
    p.add_argument("--n-ctx", type=int, default=256)
    p.add_argument("--n-embd", type=int, default=128)
    p.add_argument("--n-head", type=int, default=2)
    p.add_argument("--n-layer", type=int, default=2)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--clip", type=float, default=1.0)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--eval-interval", type=int, default=100)
    p.add_argument("--eval-batches", type=int, default=20)
    p.add_argument("--checkpoint-interval", type=int, default=250)
    p.add_argument("--no-resume", action="store_true", help="start afresh even if OUT/checkpoint exists")
    # modelcore.train.PRECISIONS, written out so that --help does not import torch.
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                   help="auto: fp32 on cpu, bf16 autocast on cuda; bf16: mixed precision on cpu too (faster on CPUs "
                        "with AMX, far slower on CPUs without AVX-512)")
    _common(p, seed=1337)

    p = commands.add_parser("sample", help="sample from a model directory (HF layout)")
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--prompt", default=None, help="text to continue; default: unconditional")
    p.add_argument("--n-samples", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=200)
    p.add_argument("--temperature", type=float, default=1.0, help="0 is greedy")
    p.add_argument("--top-k", type=int, default=0, help="0 is off; 40 is generally a good value")
    p.add_argument("--top-p", type=float, default=1.0, help="1 is off")
    p.add_argument("--jsonl", action="store_true", help="one JSON object per sample: id, ended, length, text")
    _weights_option(p)
    _common(p, seed=0)

    p = commands.add_parser("eval", help="perplexity and bits per byte of a model on a text file")
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--text", type=Path, required=True)
    p.add_argument("--stride", type=int, default=None, help="default: n_ctx / 2")
    p.add_argument("--batch-size", type=int, default=8)
    _weights_option(p)
    _common(p, seed=None)

    p = commands.add_parser("export", help="write a training checkpoint as an HF GPT-2 directory")
    p.add_argument("--checkpoint", type=Path, required=True, help="a checkpoint directory (state.json, ...)")
    p.add_argument("--tokenizer", type=Path, required=True, help="directory with vocab.json and merges.txt")
    p.add_argument("--out", type=Path, required=True)

    args = parser.parse_args(argv)
    import torch  # after parsing, so that --help is instant

    if getattr(args, "threads", 0) > 0:
        torch.set_num_threads(args.threads)
    return {"train": _train, "sample": _sample, "eval": _eval, "export": _export}[args.command](args)


def _weights_option(p: argparse.ArgumentParser) -> None:
    # modelcore.quantize.WEIGHTS, written out so that --help does not import torch.
    p.add_argument("--weights", choices=["fp32", "int8"], default="fp32",
                   help="int8: matrices in int8 with per-row scales, computed in fp32 (CPU; faster at batch 1)")


def _common(p: argparse.ArgumentParser, seed: int | None) -> None:
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda (bf16 autocast)")
    p.add_argument("--threads", type=int, default=0, help="torch threads; 0 keeps torch's default")
    if seed is not None:
        p.add_argument("--seed", type=int, default=seed)


def _train(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .evaluate import unigram_loss
    from .export import export_hf
    from .model import GPTConfig
    from .tokenizer import Tokenizer, train_tokenizer
    from .train import TrainSettings, train

    text = args.corpus.read_text(encoding="utf-8")
    cut = text.rfind("\n", 0, int(len(text) * (1 - VAL_FRACTION))) + 1 or int(len(text) * (1 - VAL_FRACTION))
    train_text, val_text = text[:cut], text[cut:]
    if not args.no_resume and (args.out / "checkpoint").is_dir() and (args.out / "vocab.json").is_file():
        tokenizer = Tokenizer.load(args.out)  # a resumed run must encode the corpus exactly as before
    else:
        tokenizer = train_tokenizer([train_text], args.vocab_size)
        tokenizer.save(args.out)
    train_tokens, val_tokens = tokenizer.encode(train_text), tokenizer.encode(val_text)
    config = GPTConfig(tokenizer.vocab_size, args.n_ctx, args.n_embd, args.n_head, args.n_layer, args.dropout)
    settings = TrainSettings(
        steps=args.steps, batch_size=args.batch_size, lr=args.lr, warmup=args.warmup, grad_accum=args.grad_accum,
        clip=args.clip, weight_decay=args.weight_decay, eval_interval=args.eval_interval,
        eval_batches=args.eval_batches, checkpoint_interval=args.checkpoint_interval, seed=args.seed,
        threads=args.threads, device=args.device, precision=args.precision,
    )  # fmt: skip
    print(f"{config}: {len(train_tokens):,} training tokens, {len(val_tokens):,} validation tokens")
    bar = tqdm(total=args.steps, unit="step")

    def progress(step: int, total: int, metrics: dict) -> None:
        bar.n = step  # a resumed run starts the bar where its checkpoint was
        val = f" val {metrics['val_loss']:.3f}" if "val_loss" in metrics else ""
        bar.set_postfix_str(f"loss {metrics['train_loss']:.3f}{val}", refresh=False)
        bar.refresh()

    started = time.monotonic()
    result = train(
        config, train_tokens, val_tokens, settings, checkpoint_dir=args.out / "checkpoint",
        resume=not args.no_resume, on_progress=progress,
    )  # fmt: skip
    bar.close()
    export_hf(result.model, tokenizer, args.out)
    (args.out / "loss_curve.json").write_text(json.dumps(result.loss_curve))
    baseline = unigram_loss(train_tokens, val_tokens, config.n_vocab)
    print(
        f"validation loss {result.final_val_loss:.4f} nats/token (unigram baseline {baseline:.4f}) "
        f"after {time.monotonic() - started:.0f} s; model in {args.out}"
    )
    return 0


def _sample(args: argparse.Namespace) -> int:
    from .export import import_hf
    from .sample import generate

    if args.weights != "fp32" and args.device != "cpu":
        raise SystemExit(f"--weights {args.weights} samples on CPU only")
    model, tokenizer, config = import_hf(args.model)
    prompt = tokenizer.encode(args.prompt) if args.prompt else None
    max_new = min(args.max_new_tokens, config.n_ctx - (len(prompt) if prompt else 1))
    samples = generate(
        model, n_samples=args.n_samples, batch_size=args.batch_size, max_new_tokens=max_new,
        temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, seed=args.seed, prompt_tokens=prompt,
        eot_id=tokenizer.eot_id, device=args.device, weights=args.weights,
    )  # fmt: skip
    for i, sample in enumerate(samples):
        text = tokenizer.decode(sample.tokens)
        if args.jsonl:
            print(
                json.dumps({"id": i, "ended": sample.ended, "length": sample.length, "text": text}),
                flush=True,
            )
        else:
            print(f"=== sample {i} ({sample.length} tokens{', ended' if sample.ended else ''}) ===")
            print((args.prompt or "") + text, flush=True)
    return 0


def _eval(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from .evaluate import evaluate_text
    from .export import import_hf
    from .quantize import with_weights

    if args.weights != "fp32" and args.device != "cpu":
        raise SystemExit(f"--weights {args.weights} evaluates on CPU only")
    model, tokenizer, config = import_hf(args.model)
    model, _int8 = with_weights(model, args.weights)  # int8: the dequantized model, the values int8 sampling uses
    model.to(args.device)
    report = evaluate_text(
        model, tokenizer, args.text.read_text(encoding="utf-8"), stride=args.stride or max(1, config.n_ctx // 2),
        batch_size=args.batch_size,
    )  # fmt: skip
    print(json.dumps(asdict(report)))
    return 0


def _export(args: argparse.Namespace) -> int:
    from .export import export_hf
    from .tokenizer import Tokenizer
    from .train import load_checkpoint_model

    out = export_hf(load_checkpoint_model(args.checkpoint), Tokenizer.load(args.tokenizer), args.out)
    print(f"wrote {', '.join(sorted(p.name for p in out.iterdir() if p.is_file()))} to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
