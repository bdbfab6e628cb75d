"""The GPT-2 language model in torch, in reading order: config, attention, MLP, block, model.

Weight for weight the architecture of openai/gpt-2; a preallocated key/value cache makes sampling cheap.
Training's operators with a backward of their own (the fused loss, and under bf16 autocast the linears,
attention, GELU and the residual stream's layer norms) are in training_ops.py.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import kernels, native
from .kernels import linear
from .training_ops import (
    Bf16Linear,
    CausalAttention,
    KeptMemory,
    LinearCrossEntropy,
    ResidualNorm,
    TiedEmbedding,
    TiedGradient,
    gelu,
    runs_native_attention,
    runs_native_norm,
)

LN_EPS = 1e-5  # GPT-2's LayerNorm epsilon
INIT_STD = 0.02  # GPT-2's weight initialisation
HPARAM_NAMES = ("n_vocab", "n_ctx", "n_embd", "n_head", "n_layer")


@dataclass(frozen=True)
class GPTConfig:
    n_vocab: int
    n_ctx: int
    n_embd: int
    n_head: int
    n_layer: int
    dropout: float = 0.0

    def validate(self) -> GPTConfig:
        for name in HPARAM_NAMES:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        return self

    @classmethod
    def from_hparams(cls, hparams: Mapping[str, object]) -> GPTConfig:
        """Build from a GPT-2 `hparams.json`-style mapping; unknown keys are refused (typos hide there)."""
        allowed = {f.name for f in fields(cls)}
        if unknown := sorted(set(hparams) - allowed):
            raise ValueError(f"unknown hparams {unknown}; expected {sorted(allowed)}")
        if missing := [name for name in HPARAM_NAMES if name not in hparams]:
            raise ValueError(f"missing hparams {missing}")
        return cls(**hparams).validate()  # type: ignore[arg-type]

    def to_hparams(self) -> dict[str, int | float]:
        return asdict(self)

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head


def parameter_count(config: GPTConfig) -> int:
    """Trainable parameters, embeddings tied (124,439,808 for GPT-2 124M)."""
    c = config.n_embd
    per_block = 12 * c * c + 13 * c  # qkv, attn proj, 4x MLP (weights + biases) and two LayerNorms
    return (config.n_vocab + config.n_ctx) * c + config.n_layer * per_block + 2 * c


class Linear(nn.Linear):
    """nn.Linear that, where no gradient is wanted, runs the CPU inference kernel in effect for it
    (GPT.prepare_kernels), and in training under CPU autocast in bf16 runs as Bf16Linear."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__(in_features, out_features, bias)
        self.memory = KeptMemory()  # training's, for Bf16Linear

    def forward(self, x: Tensor) -> Tensor:
        if (x.is_cpu and torch.is_grad_enabled() and torch.is_autocast_enabled("cpu") and self.weight.requires_grad
                and torch.get_autocast_dtype("cpu") == torch.bfloat16):  # fmt: skip
            return Bf16Linear.apply(x, self.weight, self.bias, self.memory)
        return linear(x, self.weight, self.bias, kernels.active_kernel(self))


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.dropout = config.dropout
        self.c_attn = Linear(config.n_embd, 3 * config.n_embd)  # q, k, v of all heads in one matmul
        self.c_proj = Linear(config.n_embd, config.n_embd)
        self.memory = KeptMemory()  # training's, for CausalAttention's probabilities

    def forward(self, x: Tensor, kv: Tensor | None = None, pos: int = 0) -> Tensor:
        B, T, C = x.shape
        qkv = self.c_attn(x).view(B, T, 3, self.n_head, C // self.n_head)  # [B, T, 3, H, hd]
        dropout = self.dropout if self.training else 0.0
        if kv is not None and T == 1 and not torch.is_grad_enabled() and dropout == 0:
            # One new token per row, as every sampling step after the prompt: natively where it builds.
            y = native.cached_attention(qkv, kv, pos)  # [B, 1, C] or None
            if y is not None:
                return F.dropout(self.c_proj(y), dropout, self.training)
        mask, causal = None, T > 1
        if kv is None:
            q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each [B, H, T, hd]
        else:
            # kv: [2, B, H, n_ctx, hd]; write this step's keys/values, attend over everything so far
            kv[:, :, :, pos : pos + T].copy_(qkv[:, :, 1:].permute(2, 0, 3, 1, 4))
            k, v = kv[:, :, :, : pos + T].unbind(0)  # each [B, H, pos+T, hd]
            q = qkv[:, :, 0].transpose(1, 2)  # [B, H, T, hd]
            if causal and pos > 0:  # SDPA's is_causal aligns top-left, so a chunk after a prefix needs a mask
                mask = torch.ones(T, pos + T, dtype=torch.bool, device=x.device).tril(pos)
                causal = False
        if kv is None and runs_native_attention(q, dropout):
            y = CausalAttention.apply(q, k, v, self.memory)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout, is_causal=causal)
        y = y.transpose(1, 2).reshape(B, T, C)  # [B, T, C]
        return F.dropout(self.c_proj(y), dropout, self.training)


class MLP(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.dropout = config.dropout
        self.c_fc = Linear(config.n_embd, 4 * config.n_embd)
        self.c_proj = Linear(4 * config.n_embd, config.n_embd)

    def forward(self, x: Tensor) -> Tensor:
        h = gelu(self.c_fc(x))  # [B, T, 4C]
        return F.dropout(self.c_proj(h), self.dropout, self.training)


class Block(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=LN_EPS)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=LN_EPS)
        self.mlp = MLP(config)

    def forward(self, x: Tensor, kv: Tensor | None = None, pos: int = 0) -> Tensor:
        if kv is None and runs_native_norm(x, self.ln_1):  # training under bf16 autocast: the norms in bf16
            h = ResidualNorm.apply(x, None, self.ln_1.weight, self.ln_1.bias, self.ln_1.eps)
            x, h = ResidualNorm.apply(x, self.attn(h), self.ln_2.weight, self.ln_2.bias, self.ln_2.eps)
            return x + self.mlp(h)
        x = x + self.attn(self.ln_1(x), kv, pos)  # [B, T, C]
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config.validate()
        self.wte = nn.Embedding(config.n_vocab, config.n_embd)  # also the output projection (tied)
        self.wpe = nn.Embedding(config.n_ctx, config.n_embd)
        self.h = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd, eps=LN_EPS)
        self.output_memory = KeptMemory()  # training's, for the output layer (LinearCrossEntropy)
        self.apply(self._init_weights)
        # Residual projections add up over 2 per layer, so scale them down to keep the stream's variance flat.
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=INIT_STD / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=INIT_STD)
        if isinstance(module, nn.Linear):
            nn.init.zeros_(module.bias)

    def hidden(self, idx: Tensor, kv_cache: list[Tensor] | None = None, pos: int = 0,
               tie: TiedGradient | None = None) -> Tensor:
        """Final-LayerNorm hidden states [B, T, C] of tokens idx [B, T] placed at positions pos.. (given a tie,
        the embedding's gradient joins the output layer's there)."""
        T = idx.shape[1]
        if pos + T > self.config.n_ctx:
            raise ValueError(f"sequence of {pos + T} tokens exceeds n_ctx {self.config.n_ctx}")
        tokens = self.wte(idx) if tie is None else TiedEmbedding.apply(idx, self.wte.weight, tie)
        x = tokens + self.wpe.weight[pos : pos + T]  # [B, T, C]
        x = F.dropout(x, self.config.dropout, self.training)
        for i, block in enumerate(self.h):
            x = block(x, None if kv_cache is None else kv_cache[i], pos)
        return self.ln_f(x)

    def forward(self, idx: Tensor, targets: Tensor | None = None) -> tuple[Tensor | None, Tensor | None]:
        """(logits [B, T, V], None), or given targets [B, T] (-1 = ignore) (None, mean cross-entropy).

        With targets the logits are not kept: the fused loss reuses their memory for the gradient.
        """
        if targets is None:
            h = self.hidden(idx)  # [B, T, C]
            return linear(h, self.wte.weight, kernel=kernels.active_kernel(self.wte)), None  # [B, T, V]
        wte = self.wte.weight
        # On the CPU only: on CUDA index_add_ adds with atomics, in no fixed order, so CUDA keeps nn.Embedding's
        # backward as before (and page faults, what the kept memory saves, are a CPU's cost).
        tied = torch.is_grad_enabled() and wte.requires_grad and wte.is_cpu
        tie = TiedGradient(wte, self.output_memory) if tied else None
        h = self.hidden(idx, tie=tie)
        return None, LinearCrossEntropy.apply(h.flatten(0, 1), wte, targets.flatten(), tie)

    def new_kv_cache(self, batch_size: int, dtype: torch.dtype | None = None) -> list[Tensor]:
        """One preallocated [2, B, H, n_ctx, hd] key/value buffer per layer: memory is batch x n_ctx.

        Left uninitialised: a position is always written (decode) before anything attends to it.
        """
        c, p = self.config, self.wte.weight
        shape = (c.n_layer, 2, batch_size, c.n_head, c.n_ctx, c.head_dim)
        return list(torch.empty(shape, dtype=dtype or p.dtype, device=p.device).unbind(0))

    def decode(self, idx: Tensor, kv_cache: list[Tensor], pos: int) -> Tensor:
        """Next-token logits [B, V] after feeding idx [B, T] at positions pos.., filling kv_cache."""
        h = self.hidden(idx, kv_cache, pos)[:, -1]  # [B, C]; only the last position predicts the next token
        return linear(h, self.wte.weight, kernel=kernels.active_kernel(self.wte))  # [B, V]

    def prepare_kernels(self, batch_size: int, layout: str | None = None) -> kernels.KernelSet:
        """CPU inference kernels for the weight matrices in the layout fastest at this batch size; they
        run within `with` the returned set (modelcore.kernels), in the thread that entered it.

        The layout is timed on this model's matrices the first time a process asks for its shapes and
        batch size, unless given. Most layouts hold a copy of the matrices (the model's size again) for as
        long as the set lives, and the copies go stale if the weights change. Off CPU, or for weights other
        than fp32, the set is empty.
        """
        if layout is not None:
            kernels.check_layout(layout)
        weight = self.wte.weight
        if not weight.is_cpu or weight.dtype != torch.float32:
            return kernels.KernelSet(None, {})
        layers = [m for m in self.modules() if isinstance(m, Linear)]
        layout = layout or kernels.fastest_layout([*(layer.weight for layer in layers), weight], batch_size)
        prepared = {layer: kernels.prepare(layout, layer.weight, batch_size) for layer in layers}
        prepared[self.wte] = kernels.prepare(layout, weight, batch_size)  # the output projection (tied)
        return kernels.KernelSet(layout, prepared)
