"""Perplexity and bits per byte of a held-out text, scored with a sliding window over n_ctx."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .model import GPT
from .tokenizer import Tokenizer


@dataclass(frozen=True)
class EvalReport:
    loss: float  # mean cross-entropy, nats per token
    perplexity: float  # exp(loss)
    bits_per_byte: float  # total bits / UTF-8 bytes: comparable across tokenizers
    tokens: int  # tokens scored
    bytes: int  # UTF-8 bytes of the text


def window_spans(n_tokens: int, n_ctx: int, stride: int) -> list[tuple[int, int, int]]:
    """(begin, end, first scored) per window: each window moves by stride, scoring only what is new."""
    if not 1 <= stride <= n_ctx:
        raise ValueError(f"stride must be between 1 and n_ctx ({n_ctx}), got {stride}")
    spans, prev_end = [], 0
    for begin in range(0, n_tokens, stride):
        end = min(begin + n_ctx, n_tokens)
        spans.append((begin, end, prev_end))
        prev_end = end
        if end == n_tokens:
            break
    return spans


@torch.no_grad()
def evaluate_text(model: GPT, tokenizer: Tokenizer, text: str, *, stride: int, batch_size: int,
                  on_progress: Callable[[int, int], None] | None = None) -> EvalReport:
    """Score every token of text, each with at least n_ctx - stride tokens of context where the text allows.

    The text is preceded by <|endoftext|>, as a document start, so that its first token is scored too.
    `on_progress(windows done, windows)` is called after each batch (a long text keeps its job's heartbeat).
    """
    if not text:
        raise ValueError("cannot evaluate an empty text")
    n_ctx = model.config.n_ctx
    device = next(model.parameters()).device
    seq = torch.tensor([tokenizer.eot_id, *tokenizer.encode(text)])  # [N + 1]
    inputs, targets = seq[:-1], seq[1:]  # [N] each
    spans = window_spans(len(targets), n_ctx, stride)
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    )
    model.eval()
    total_nll = 0.0
    for i in range(0, len(spans), batch_size):
        batch = spans[i : i + batch_size]
        width = max(end - begin for begin, end, _ in batch)
        x = torch.zeros(len(batch), width, dtype=torch.long)  # [b, width]; right padding never attends back
        y = torch.full((len(batch), width), -1, dtype=torch.long)  # [b, width]; -1 is not scored
        for row, (begin, end, first) in enumerate(batch):
            x[row, : end - begin] = inputs[begin:end]
            y[row, : end - begin] = targets[begin:end]
            y[row, : max(0, first - begin)] = -1  # scored by an earlier window
        with autocast:
            logits, _ = model(x.to(device))  # [b, width, V]
        total_nll += F.cross_entropy(
            logits.float().flatten(0, 1), y.to(device).flatten(), ignore_index=-1, reduction="sum"
        ).item()
        if on_progress is not None:
            on_progress(min(i + batch_size, len(spans)), len(spans))
    n_tokens, n_bytes = len(targets), len(text.encode("utf-8"))
    loss = total_nll / n_tokens
    return EvalReport(loss, math.exp(loss), total_nll / math.log(2) / n_bytes, n_tokens, n_bytes)


def unigram_loss(train_tokens: list[int], val_tokens: list[int], n_vocab: int) -> float:
    """Cross-entropy (nats/token) of val_tokens under training-token frequencies (add-one smoothed).

    The baseline a language model must clearly beat to show it uses context at all.
    """
    counts = torch.bincount(torch.tensor(train_tokens), minlength=n_vocab).double() + 1.0  # [V]
    log_probs = (counts / counts.sum()).log()  # [V]
    return -log_probs[torch.tensor(val_tokens)].mean().item()
