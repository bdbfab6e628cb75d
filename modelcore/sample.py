"""Batched sampling with a key/value cache, following openai/gpt-2 `src/sample.py`.

Logits / temperature, then top-k (0 = off), then top-p (1 = off), then a multinomial draw.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from . import fused, kernels, native, quantize
from .model import GPT

END_CHECK_INTERVAL = 8  # steps between "has every row ended?" checks; each check syncs with the device


@dataclass(frozen=True)
class Sample:
    tokens: list[int]  # the generated tokens, without the prompt and without the final <|endoftext|>
    ended: bool  # whether the model produced <|endoftext|> before the length cap
    length: int  # len(tokens)


def top_k_logits(logits: Tensor, k: int) -> Tensor:
    """Keep the k largest logits per row (and any tied with the k-th); 0 keeps all."""
    if k <= 0 or k >= logits.shape[-1]:
        return logits
    kth = torch.topk(logits, k, dim=-1).values[:, -1:]  # [B, 1]
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_logits(logits: Tensor, p: float) -> Tensor:
    """Keep the most likely tokens whose cumulative probability stays within p (at least one); 1 keeps all.

    As openai/gpt-2: the kept set is the prefix with cumulative probability <= p, so unlike some other
    implementations the token that crosses p is dropped.
    """
    if p >= 1.0:
        return logits
    sorted_logits = torch.sort(logits, dim=-1, descending=True).values  # [B, V]
    cumulative = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)  # [B, V]
    last = ((cumulative <= p).sum(dim=-1, keepdim=True) - 1).clamp(min=0)  # [B, 1] index of the last kept
    return logits.masked_fill(logits < sorted_logits.gather(-1, last), float("-inf"))


def next_tokens(
    logits: Tensor, temperature: float, top_k: int, top_p: float, generator: torch.Generator
) -> Tensor:
    """One token per row [B] from next-token logits [B, V]; temperature 0 means greedy."""
    if temperature == 0.0:
        return logits.argmax(dim=-1)
    logits = logits.float()
    if temperature != 1.0:
        logits = logits / temperature
    if 0 < top_k < logits.shape[-1]:
        values, indices, tied = _top_k(logits, top_k)  # [B, k], sorted
        # Only these k can be drawn, so draw among them (not across the vocabulary), unless a logit ties
        # with the k-th: openai/gpt-2 keeps those too, as top_k_logits on the path below does.
        if not tied:
            choice = draw(torch.softmax(top_p_logits(values, top_p), dim=-1), generator)  # [B]
            return indices.gather(1, choice.unsqueeze(1)).squeeze(1)
    logits = top_p_logits(top_k_logits(logits, top_k), top_p)
    return draw(torch.softmax(logits, dim=-1), generator)


def _top_k(logits: Tensor, k: int) -> tuple[Tensor, Tensor, bool]:
    """torch.topk(logits, k) [B, k] and whether any row has a logit outside its k tied with its k-th; one
    native pass per row where it can (modelcore.native.top_k: the same values and indices)."""
    if (found := native.top_k(logits, k)) is not None:
        return (*found, False)  # it declines rows with a tie
    values, indices = torch.topk(logits, k, dim=-1)
    return values, indices, bool(((logits >= values[:, -1:]).sum(dim=-1) > k).any())


def draw(probs: Tensor, generator: torch.Generator) -> Tensor:
    """One index per row [B] drawn from probs [B, V], by inverting the cumulative distribution.

    Exactly a multinomial draw, from one uniform number per row: torch.multinomial draws V exponentials
    per row, which on CPU costs more than the model step at batch 32.
    """
    cdf = probs.cumsum(dim=-1)  # [B, V]
    uniform = torch.rand(probs.shape[0], 1, generator=generator, device=probs.device)  # [B, 1] in [0, 1)
    u = (1.0 - uniform) * cdf[:, -1:]  # [B, 1] in (0, total]
    # The first index whose cdf reaches u: u > 0 skips leading zero-probability tokens, and u <= total
    # stops at the last token with probability (cdf rises there, then stays flat).
    return torch.searchsorted(cdf, u).squeeze(1)  # [B]


def generate(
    model: GPT,
    *,
    n_samples: int,
    batch_size: int,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    seed: int = 0,
    prompt_tokens: Sequence[int] | None = None,
    eot_id: int | None,
    device: str = "cpu",
    layout: str | None = None,
    fused_step: bool = True,
    weights: str = "fp32",
) -> Iterator[Sample]:
    """Yield n_samples samples, batch by batch, so memory is batch_size x n_ctx however many are asked.

    Without a prompt, sampling starts from <|endoftext|> (unconditional). Rows stop at eot_id;
    eot_id=None generates exactly max_new_tokens (it then needs a prompt). Moves the model to device.
    On CPU each token after the prompt goes through one native call (modelcore.fused) where it can be
    built, unless fused_step=False; above batch 1 it reads packed copies of the matrices, kept with the model
    for the next call while its weights do not change (the model's size again). In torch (the
    prompt, or every step without the native one) it multiplies by the matrices in the layout fastest at
    its batch size, usually a copy held until the iteration ends (GPT.prepare_kernels).
    weights="int8" (CPU only) samples the model with its matrices in int8 (modelcore.quantize): the native
    step reads them as int8; torch multiplies by their dequantized values, the same numbers.
    A seed repeats its samples exactly within a process. Across processes it does with a fixed `layout`
    (e.g. modelcore.kernels.FIXED_LAYOUT) on machines that build the native step alike (its sums do not
    depend on the thread count), since kernels round differently: the timed layout may differ between
    processes, and the native step rounds otherwise than torch.
    """
    if n_samples < 1 or batch_size < 1 or max_new_tokens < 1:
        raise ValueError("n_samples, batch_size and max_new_tokens must be positive")
    if temperature < 0 or top_k < 0 or not 0.0 < top_p <= 1.0:
        raise ValueError("need temperature >= 0, top_k >= 0 and 0 < top_p <= 1")
    prompt = list(prompt_tokens) if prompt_tokens else ([] if eot_id is None else [eot_id])
    if not prompt:
        raise ValueError("unconditional sampling starts from <|endoftext|>: give eot_id or a prompt")
    n_ctx = model.config.n_ctx
    if len(prompt) + max_new_tokens > n_ctx:
        raise ValueError(
            f"prompt ({len(prompt)} tokens) + max_new_tokens ({max_new_tokens}) = "
            f"{len(prompt) + max_new_tokens} exceeds the model's context of n_ctx = {n_ctx} tokens"
        )
    if weights not in quantize.WEIGHTS:
        raise ValueError(f"weights must be one of {', '.join(quantize.WEIGHTS)}, not {weights!r}")
    if weights != "fp32" and torch.device(device).type != "cpu":
        raise ValueError(f"weights={weights!r} samples on CPU only")
    model = model.to(device).eval()
    cuda = torch.device(device).type == "cuda"
    model, int8 = quantize.with_weights(model, weights)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else contextlib.nullcontext()
    generator = torch.Generator(device).manual_seed(seed)
    batch = min(batch_size, n_samples)
    with torch.inference_mode():
        cache = model.new_kv_cache(batch, dtype=torch.bfloat16 if cuda else None)
    step = fused.decoder(model, cache, int8) if fused_step else None  # None: all in torch
    # Once: a last, smaller batch uses them too. With the native step they serve only the prompt: nothing
    # timed, and by default the layout that holds no copy.
    prepared = model.prepare_kernels(1, layout or kernels.FIXED_LAYOUT) if step else model.prepare_kernels(batch, layout)
    prompt_t = torch.tensor([prompt], device=device)  # [1, P]
    settings = (temperature, top_k, top_p, generator)
    for start in range(0, n_samples, batch_size):
        b = min(batch_size, n_samples - start)
        # Modes are entered per batch, not around the yields, so that they never leak into the caller's code.
        with torch.inference_mode(), autocast, prepared:
            rows = _generate_batch(model, prompt_t.expand(b, -1), [kv[:, :b] for kv in cache], max_new_tokens,
                                   eot_id, settings, step)  # fmt: skip
        yield from rows


def _generate_batch(
    model: GPT,
    prompt: Tensor,
    kv_cache: list[Tensor],
    max_new_tokens: int,
    eot_id: int | None,
    settings: tuple,
    step: fused.FusedDecoder | None = None,
) -> list[Sample]:
    """Samples for the b prompt rows; tokens after the prompt go through step (native) if given."""
    b, p = prompt.shape
    out = torch.empty(b, max_new_tokens, dtype=torch.long, device=prompt.device)  # [b, N]
    ended = torch.zeros(b, dtype=torch.bool, device=prompt.device)  # [b]
    logits = model.decode(prompt, kv_cache, 0)  # [b, V]
    n = max_new_tokens
    for t in range(max_new_tokens):
        token = next_tokens(logits, *settings)  # [b]
        out[:, t] = token
        if eot_id is not None:
            ended |= token == eot_id
            if t % END_CHECK_INTERVAL == END_CHECK_INTERVAL - 1 and bool(ended.all()):
                n = t + 1
                break
        if t + 1 < max_new_tokens:
            if step is None:
                logits = model.decode(token[:, None], kv_cache, p + t)
                continue
            if b == 1 and int(token) == eot_id:  # the only row has ended: no periodic check needed to stop here
                n = t + 1
                break
            logits = step(token, p + t)
    samples = []
    for row in out[:, :n].tolist():
        length = row.index(eot_id) if eot_id in row else len(row)
        samples.append(Sample(tokens=row[:length], ended=length < len(row), length=length))
    return samples
