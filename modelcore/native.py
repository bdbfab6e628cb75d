"""modelcore's native code (decode_step.c), compiled for this machine on first use, and its batched attention.

Its entry points: `decode_step` and `decode_batch`, whole decoding steps at batch 1 and above
(modelcore/fused.py); `decode_attention`, attention over the key/value cache for one new token per row at
any batch size, which GPT.decode's layers use on CPU (`cached_attention`); sampling's top-k at any
batch size (`top_k`). In torch that attention costs a cache write, a dozen view and copy operators and a
flash-attention call made for long queries, ~0.35 ms a layer for 2 MFLOP at a shard's batch of 25: a fifth
of a generation step (bench/README.md). And for training in bf16 (modelcore/training_ops.py): the output
layer's loss (`cross_entropy_bf16`), the causal attention's softmax both ways (`causal_softmax_bf16`,
`causal_softmax_backward_bf16`; on CPUs with AVX512-BF16 and no AMX, with the product before each fused
in: `causal_attention_probs_bf16`, `causal_attention_scores_grad_bf16`, and the backward's other two products
`causal_attention_column_products_bf16`), the GELU both ways (`gelu`, `gelu_backward`: fp32 training too)
and the residual stream's layer norm both ways (`layer_norm_bf16`,
`layer_norm_backward_bf16`); in either precision, the optimizer step's gradient norm and AdamW
(`sum_of_squares`, `adamw_step`; modelcore/clipped_adamw.py).

Building needs a C compiler with OpenMP (gcc; $CC to choose another). Where there is none, or the build
fails, `library()` is None, `unavailable_reason()` says why (logged once) and everything stays in torch.
The library is cached per source, flags, compiler and CPU in $MODELCORE_NATIVE_CACHE (default
~/.cache/stagegate/modelcore), and loaded only from a folder and file no other user can write.
$MODELCORE_NATIVE_CFLAGS adds compiler flags, e.g. -mno-avx512f to build for a fleet's AVX2 hosts on an
AVX-512 one: the two builds give the same bits (tests/modelcore/test_fused_batch.py).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import math
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch
from torch import Tensor

logger = logging.getLogger(__name__)
SOURCE = Path(__file__).with_name("decode_step.c")
TOP_K_MAX = 64  # top_k inserts each new candidate into a sorted list: for small k only (GPT-2's 40)
# -ffp-contract=off: no fused multiply-adds but the dot products' own (decode_step.c's MADD), so that the
# rest rounds the same way on every CPU.
FLAGS = ["-O3", "-march=native", "-ffp-contract=off", "-fno-math-errno", "-fopenmp", "-shared", "-fPIC"]


def unavailable_reason() -> str | None:
    """Why the native library cannot be used here, or None when it can."""
    return _build()[1]


def library() -> ctypes.CDLL | None:
    return _build()[0]


def cached_attention(qkv: Tensor, kv: Tensor, pos: int) -> Tensor | None:
    """Causal attention of one new token per row at pos, as CausalSelfAttention does it with a cache: the
    token's keys and values join kv, and y [B, 1, C] (heads side by side) comes back. None where the native
    library is unavailable or these tensors do not fit it; the caller then does it in torch.

    qkv: [B, 1, 3, H, hd] (c_attn's output); kv: [2, B, H, n_ctx, hd], a batch slice of a preallocated
    cache. Each (row, head) is summed by one thread in a fixed order, so the result does not depend on the
    thread count; it rounds differently from torch's kernels (last bits).
    """
    B, T, three, H, hd = qkv.shape
    two, kv_b, kv_h, n_ctx, kv_hd = kv.shape
    fits = (T == 1 and three == 3 and two == 2 and (kv_b, kv_h, kv_hd) == (B, H, hd) and 0 <= pos < n_ctx
            and qkv.dtype == kv.dtype == torch.float32 and qkv.is_cpu and kv.is_cpu and qkv.is_contiguous()
            and kv.stride()[1:] == (H * n_ctx * hd, n_ctx * hd, hd, 1)
            and kv.stride(0) >= B * H * n_ctx * hd)  # keys and values apart, not an expanded view  # fmt: skip
    if not fits or (lib := library()) is None:
        return None
    y = torch.empty(B, 1, H * hd, dtype=torch.float32)
    scores = torch.empty(B * H * (pos + 1), dtype=torch.float32)
    lib.decode_attention(qkv.data_ptr(), kv.data_ptr(), kv.stride(0), B, H, n_ctx, hd, pos,
                         torch.get_num_threads(), scores.data_ptr(), y.data_ptr())  # fmt: skip
    return y


def top_k(logits: Tensor, k: int) -> tuple[Tensor, Tensor] | None:
    """torch.topk(logits, k) of rows [B, V] (0 < k < V, k <= TOP_K_MAX), no logit outside a row's k being
    equal to its k-th. None where the library is unavailable, the rows are not contiguous fp32 CPU rows, any
    holds a NaN, or any two of a row's k + 1 largest are equal (a tie with the k-th, or values torch.topk
    orders its own way), or k is larger: then use torch. Rows are shared out among torch's threads."""
    if not (logits.dim() == 2 and 0 < k < min(logits.shape[1], TOP_K_MAX + 1) and logits.is_cpu
            and logits.dtype == torch.float32 and logits.is_contiguous()) or (lib := library()) is None:  # fmt: skip
        return None
    rows = logits.shape[0]
    values, indices = torch.empty(rows, k + 1, dtype=torch.float32), torch.empty(rows, k + 1, dtype=torch.int64)
    if lib.top_k(logits.data_ptr(), rows, logits.shape[1], k + 1, values.data_ptr(), indices.data_ptr(),
                 torch.get_num_threads()):
        return None
    if bool((values[:, 1:] == values[:, :-1]).any()):
        return None
    return values[:, :k], indices[:, :k]


def cross_entropy_bf16(logits: Tensor, targets: Tensor) -> Tensor | None:
    """Per-row cross-entropy [N] (0 for targets of -1) of bf16 logits [N, V], which then hold the gradient
    softmax - one-hot in bf16, in place: training's output layer under CPU autocast (LinearCrossEntropy).
    Computed in fp32 from the logits, as torch does after casting them up. None where the library is
    unavailable or the tensors do not fit it (logits untouched); the caller then does it in torch."""
    if not (logits.dim() == 2 and logits.dtype == torch.bfloat16 and logits.is_cpu and logits.is_contiguous()
            and targets.shape == logits.shape[:1] and targets.dtype == torch.int64 and targets.is_contiguous()
            and targets.is_cpu) or (lib := library()) is None:  # fmt: skip
        return None
    losses = torch.empty(logits.shape[0], dtype=torch.float32)
    if lib.cross_entropy_bf16(logits.data_ptr(), targets.data_ptr(), logits.shape[0], logits.shape[1],
                              losses.data_ptr(), torch.get_num_threads()):
        return None  # nothing written: no memory for its scratch, or a target past the vocabulary (torch says so)
    return losses


def _fits_activations(*tensors: Tensor, dtypes: tuple[torch.dtype, ...] = (torch.bfloat16,)) -> bool:
    """Contiguous CPU tensors of one shape and one of dtypes (bf16 unless told)."""
    first = tensors[0]
    return first.dtype in dtypes and all(t.shape == first.shape and t.dtype == first.dtype and t.is_cpu
                                         and t.is_contiguous() for t in tensors)  # fmt: skip


def _fits_scores(offset: int, *scores: Tensor) -> bool:
    rows, cols = scores[0].shape[-2:] if scores[0].dim() >= 2 else (0, 0)
    return rows > 0 and 0 <= offset and offset + rows <= cols and _fits_activations(*scores)


def causal_softmax_bf16(scores: Tensor, scale: float, offset: int = 0) -> bool:
    """softmax(scale S) in place of bf16 scores S [..., rows, cols] of queries at offset.. against keys
    0..cols - 1 (scale > 0, offset + rows <= cols): row r over its columns 0..offset + r, 0 past them. The
    probabilities of training's causal attention in bf16 (training_ops.CausalAttention), computed in fp32 from
    the scores and rounded to bf16. False (scores untouched) where the library is unavailable, the tensor does
    not fit, or there is no memory for its scratch; the caller then does it in torch."""
    if scale <= 0 or not _fits_scores(offset, scores) or (lib := library()) is None:
        return False
    rows, cols = scores.shape[-2:]
    return lib.causal_softmax_bf16(scores.data_ptr(), scores.numel() // (rows * cols), rows, cols, offset, scale,
                                   torch.get_num_threads()) == 0  # fmt: skip


def causal_softmax_backward_bf16(probs: Tensor, grad: Tensor, scale: float, offset: int = 0) -> bool:
    """In place of grad (that of causal_softmax_bf16's probabilities P, the same shape and offset), the scores'
    gradient scale P (grad - the row's sum of P grad), 0 past each row's column offset + r, in bf16. False (grad
    untouched) where the library is unavailable or the tensors do not fit; the caller then does it in torch."""
    if not _fits_scores(offset, probs, grad) or (lib := library()) is None:
        return False
    rows, cols = probs.shape[-2:]
    lib.causal_softmax_backward_bf16(probs.data_ptr(), grad.data_ptr(), probs.numel() // (rows * cols), rows, cols,
                                     offset, scale, torch.get_num_threads())  # fmt: skip
    return True


def causal_attention_probs_bf16(q: Tensor, k: Tensor, probs: Tensor, scale: float, offset: int) -> bool:
    """Into probs [M, rows, cols], causal_softmax_bf16's probabilities of the scores q k^T for q's rows
    offset..offset + rows - 1 against k's rows 0..cols - 1 (cols = offset + rows), the product fused in and in
    fp32 (q, k: bf16 [M, T, hd], hd even). False (probs untouched) where the library is unavailable, the CPU has
    no AVX512-BF16 units or has AMX (torch's products are then the faster), the tensors do not fit, or there is
    no memory for its scratch; the caller then takes torch's product and causal_softmax_bf16."""
    if scale <= 0 or not _fits_rows_causal(offset, q, k, probs) or (lib := library()) is None:
        return False
    M, T, hd = q.shape
    return lib.causal_attention_probs_bf16(q.data_ptr(), k.data_ptr(), probs.data_ptr(), M, T, hd, offset,
                                           probs.shape[1], scale, torch.get_num_threads()) == 0  # fmt: skip


def causal_attention_scores_grad_bf16(grad_y: Tensor, v: Tensor, probs: Tensor, out: Tensor, scale: float,
                                      offset: int) -> bool:
    """Into out (probs' shape), causal_softmax_backward_bf16's gradient of the scores from that of the
    probabilities, grad_y v^T, fused in and in fp32: the backward of causal_attention_probs_bf16 for the same
    rows, with grad_y the attention output's gradient and v its values (bf16 [M, T, hd]). False (out untouched)
    as causal_attention_probs_bf16."""
    if not (_fits_rows_causal(offset, grad_y, v, probs) and _fits_activations(probs, out)) \
            or (lib := library()) is None:
        return False
    M, T, hd = v.shape
    return lib.causal_attention_scores_grad_bf16(grad_y.data_ptr(), v.data_ptr(), probs.data_ptr(), out.data_ptr(),
                                                 M, T, hd, offset, probs.shape[1], scale,
                                                 torch.get_num_threads()) == 0  # fmt: skip


def causal_attention_column_products_bf16(blocks: Tensor, b: Tensor, out: Tensor, block_rows: int) -> bool:
    """Into out (bf16 [M, T, hd], b's shape), out[m, j] = the sum over rows i of a[m][i][j] b[m, i], a the causal
    matrices in `blocks` as CausalAttention lays them out (blocks of block_rows query rows: block k the [rows,
    end] matrices of all M, one after another, 0 past each row's diagonal), in fp32 and rounded once: the
    values' gradient P^T grad_y from the probabilities, the keys' dS^T q from the scores' gradient. False (out
    untouched) as causal_attention_probs_bf16."""
    if not (b.dim() == 3 and block_rows > 0 and _fits_activations(b, out) and blocks.dim() == 1
            and blocks.dtype == torch.bfloat16 and blocks.is_cpu and blocks.is_contiguous()):
        return False
    M, T, hd = b.shape
    count = sum((min(start + block_rows, T) - start) * min(start + block_rows, T) for start in range(0, T, block_rows))
    if blocks.numel() != M * count or (lib := library()) is None:
        return False
    return lib.causal_attention_column_products_bf16(blocks.data_ptr(), b.data_ptr(), out.data_ptr(), M, T, hd,
                                                     block_rows, torch.get_num_threads()) == 0  # fmt: skip


def _fits_rows_causal(offset: int, x: Tensor, y: Tensor, out: Tensor) -> bool:
    """x, y contiguous bf16 [M, T, hd] on the CPU, hd even; out contiguous bf16 [M, rows, offset + rows], within T."""
    if not (x.dim() == 3 and out.dim() == 3 and _fits_activations(x, y) and _fits_scores(offset, out)):
        return False
    M, T, hd = x.shape
    return hd > 0 and hd % 2 == 0 and out.shape[0] == M and out.shape[2] <= T


GELU_DTYPES = (torch.bfloat16, torch.float32)


def gelu(u: Tensor) -> Tensor | None:
    """GPT-2's tanh GELU of bf16 or fp32 u, as torch's F.gelu(u, approximate="tanh"): in fp32, rounded to bf16 for
    bf16 u as torch rounds (fp32 u: within a few ulps of torch's). None where the library is unavailable or u does
    not fit (contiguous, bf16 or fp32, on the CPU); then use torch."""
    if not _fits_activations(u, dtypes=GELU_DTYPES) or (lib := library()) is None:
        return None
    out = torch.empty_like(u)
    run = lib.gelu_bf16 if u.dtype == torch.bfloat16 else lib.gelu_f32
    run(u.data_ptr(), out.data_ptr(), u.numel(), torch.get_num_threads())
    return out


def gelu_backward(u: Tensor, grad: Tensor) -> Tensor | None:
    """The gradient of gelu at u given grad, in u's dtype, as torch's gelu_backward computes it. None where the
    library is unavailable or the tensors do not fit; then use torch."""
    if not _fits_activations(u, grad, dtypes=GELU_DTYPES) or (lib := library()) is None:
        return None
    out = torch.empty_like(u)
    run = lib.gelu_backward_bf16 if u.dtype == torch.bfloat16 else lib.gelu_backward_f32
    run(u.data_ptr(), grad.data_ptr(), out.data_ptr(), u.numel(), torch.get_num_threads())
    return out


def layer_norm_bf16(x: Tensor, weight: Tensor, bias: Tensor, eps: float,
                    branch: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor] | None:
    """LayerNorm over the last dimension of the fp32 stream x (plus the bf16 branch, where given), computed in
    fp32 as torch's layer_norm and rounded to bf16: (the stream, i.e. x or x + branch, the normalised bf16
    values, and each row's mean and 1 / std). None where the library is unavailable or the tensors do not fit
    (contiguous CPU tensors: x fp32, branch bf16 of its shape, weight and bias fp32 of its last dimension)."""
    if not _fits_norm(x, weight, bias) or (branch is not None and not _fits_activations(branch)) \
            or (branch is not None and branch.shape != x.shape) or (lib := library()) is None:
        return None
    C = x.shape[-1]
    rows = x.numel() // C
    stream = torch.empty_like(x) if branch is not None else x
    out = torch.empty(x.shape, dtype=torch.bfloat16)
    mean, rstd = torch.empty(rows), torch.empty(rows)
    lib.layer_norm_bf16(x.data_ptr(), None if branch is None else branch.data_ptr(), weight.data_ptr(),
                        bias.data_ptr(), stream.data_ptr(), out.data_ptr(), mean.data_ptr(), rstd.data_ptr(), rows,
                        C, eps, torch.get_num_threads())  # fmt: skip
    return stream, out, mean, rstd


def layer_norm_backward_bf16(stream: Tensor, mean: Tensor, rstd: Tensor, weight: Tensor, grad: Tensor,
                             through: Tensor | None = None, low: bool = False,
                             ) -> tuple[Tensor, Tensor | None, Tensor, Tensor] | None:
    """The gradients of layer_norm_bf16 given that of its bf16 output (grad) and, where given, the fp32 gradient
    that reaches the stream past the norm (through): (the stream's fp32 gradient, the same rounded to bf16 where
    low, the weight's, the bias's). None where the library is unavailable, the tensors do not fit or there is no
    memory for the per-thread sums; then use torch."""
    if not _fits_norm(stream, weight) or not _fits_activations(grad) or grad.shape != stream.shape \
            or (through is not None and (through.shape != stream.shape or not _fits_norm(through, weight))) \
            or (lib := library()) is None:
        return None
    C = stream.shape[-1]
    rows = stream.numel() // C
    dx = torch.empty_like(stream)
    dx_low = torch.empty(stream.shape, dtype=torch.bfloat16) if low else None
    dw, db = torch.empty(C), torch.empty(C)
    failed = lib.layer_norm_backward_bf16(
        stream.data_ptr(), mean.data_ptr(), rstd.data_ptr(), weight.data_ptr(), grad.data_ptr(),
        None if through is None else through.data_ptr(), dx.data_ptr(), None if dx_low is None else dx_low.data_ptr(),
        dw.data_ptr(), db.data_ptr(), rows, C, torch.get_num_threads())
    return None if failed else (dx, dx_low, dw, db)


def _fits_norm(x: Tensor, *vectors: Tensor) -> bool:
    """x a contiguous fp32 CPU tensor with rows of C values, and each of vectors (the weight, the bias) [C] too."""
    C = x.shape[-1] if x.dim() else 0
    return C > 0 and all(t.dtype == torch.float32 and t.is_cpu and t.is_contiguous() for t in (x, *vectors)) \
        and all(v.shape == (C,) for v in vectors)


def _pointers(tensors: list[Tensor]) -> ctypes.Array:
    return (ctypes.c_void_p * max(1, len(tensors)))(*[t.data_ptr() for t in tensors])


def _fits_step(*lists: list[Tensor]) -> bool:
    """Lists of equally many dense CPU fp32 tensors, contiguous, of the same sizes index by index."""
    first = lists[0]
    return all(len(tensors) == len(first) for tensors in lists) and all(
        t.layout == torch.strided and t.is_cpu and t.dtype == torch.float32 and t.is_contiguous()
        and t.numel() == first[i].numel()
        for tensors in lists for i, t in enumerate(tensors))  # fmt: skip


def sum_of_squares(tensors: list[Tensor]) -> float | None:
    """The sum of the squares of fp32 tensors' values (in double, the same for any thread count), or None where
    the library is unavailable, the tensors do not fit (CPU, fp32, contiguous) or there is no memory."""
    if not _fits_step(tensors) or (lib := library()) is None:
        return None
    sizes = (ctypes.c_long * max(1, len(tensors)))(*[t.numel() for t in tensors])
    total = lib.sum_of_squares(_pointers(tensors), sizes, len(tensors), torch.get_num_threads())
    return None if total < 0 else total


def adamw_step(params: list[Tensor], grads: list[Tensor], exp_avgs: list[Tensor], exp_avg_sqs: list[Tensor], *,
               lr: float, betas: tuple[float, float], eps: float, weight_decay: float, step: int,
               grad_scale: float) -> bool:
    """AdamW's update of params (and their moments) in place, from grads times grad_scale (grads unchanged), at
    optimizer step `step` (counted from 1) for every tensor; as torch.optim.AdamW computes it, in fp32. False
    (nothing written) where the library is unavailable or the tensors do not fit."""
    if not _fits_step(params, grads, exp_avgs, exp_avg_sqs) or (lib := library()) is None:
        return False
    beta1, beta2 = betas
    # In double, then rounded once, as torch's AdamW computes its constants.
    constants = (1 - lr * weight_decay, 1 - beta1, beta2, 1 - beta2, eps, lr / (1 - beta1**step),
                 math.sqrt(1 - beta2**step), grad_scale)  # fmt: skip
    sizes = (ctypes.c_long * max(1, len(params)))(*[t.numel() for t in params])
    return lib.adamw_step(*(_pointers(tensors) for tensors in (params, grads, exp_avgs, exp_avg_sqs)), sizes,
                          len(params), *constants, torch.get_num_threads()) == 0


@functools.cache
def _build() -> tuple[ctypes.CDLL | None, str | None]:
    compiler = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    try:
        if not compiler:
            raise OSError("no C compiler found (install gcc, or set CC)")
        path = _compiled(compiler)
        try:
            lib = _load(path)
        except _Unloadable:  # a damaged cached file (a disk that filled mid-write, say): build it once more
            path.unlink(missing_ok=True)
            lib = _load(_compiled(compiler))
    except (OSError, subprocess.SubprocessError) as exc:
        reason = f"building {SOURCE.name} failed: {exc}"
        logger.warning("sampling stays in torch (slower): %s", reason)
        return None, reason
    lib.decode_attention.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_ssize_t, *[ctypes.c_int] * 6,
                                     ctypes.c_void_p, ctypes.c_void_p]  # fmt: skip
    lib.decode_attention.restype = None
    lib.top_k.argtypes = [ctypes.c_void_p, *[ctypes.c_int] * 3, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int]
    lib.top_k.restype = ctypes.c_int
    lib.cross_entropy_bf16.argtypes = [ctypes.c_void_p, ctypes.c_void_p, *[ctypes.c_int] * 2, ctypes.c_void_p,
                                       ctypes.c_int]
    lib.cross_entropy_bf16.restype = ctypes.c_int
    lib.causal_softmax_bf16.argtypes = [ctypes.c_void_p, *[ctypes.c_int] * 4, ctypes.c_float, ctypes.c_int]
    lib.causal_softmax_bf16.restype = ctypes.c_int
    lib.causal_softmax_backward_bf16.argtypes = [ctypes.c_void_p, ctypes.c_void_p, *[ctypes.c_int] * 4,
                                                 ctypes.c_float, ctypes.c_int]  # fmt: skip
    lib.causal_softmax_backward_bf16.restype = None
    lib.causal_attention_probs_bf16.argtypes = [*[ctypes.c_void_p] * 3, *[ctypes.c_int] * 5, ctypes.c_float,
                                                ctypes.c_int]  # fmt: skip
    lib.causal_attention_probs_bf16.restype = ctypes.c_int
    lib.causal_attention_scores_grad_bf16.argtypes = [*[ctypes.c_void_p] * 4, *[ctypes.c_int] * 5, ctypes.c_float,
                                                      ctypes.c_int]  # fmt: skip
    lib.causal_attention_scores_grad_bf16.restype = ctypes.c_int
    lib.causal_attention_column_products_bf16.argtypes = [*[ctypes.c_void_p] * 3, *[ctypes.c_int] * 5]
    lib.causal_attention_column_products_bf16.restype = ctypes.c_int
    lib.gelu_bf16.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_long, ctypes.c_int]
    lib.gelu_bf16.restype = None
    lib.gelu_backward_bf16.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_long, ctypes.c_int]
    lib.gelu_backward_bf16.restype = None
    lib.gelu_f32.argtypes = lib.gelu_bf16.argtypes
    lib.gelu_f32.restype = None
    lib.gelu_backward_f32.argtypes = lib.gelu_backward_bf16.argtypes
    lib.gelu_backward_f32.restype = None
    lib.layer_norm_bf16.argtypes = [*[ctypes.c_void_p] * 8, ctypes.c_long, ctypes.c_int, ctypes.c_float, ctypes.c_int]
    lib.layer_norm_bf16.restype = None
    lib.layer_norm_backward_bf16.argtypes = [*[ctypes.c_void_p] * 10, ctypes.c_long, ctypes.c_int, ctypes.c_int]
    lib.layer_norm_backward_bf16.restype = ctypes.c_int
    lib.sum_of_squares.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
    lib.sum_of_squares.restype = ctypes.c_double
    lib.adamw_step.argtypes = [*[ctypes.c_void_p] * 5, ctypes.c_int, *[ctypes.c_float] * 8, ctypes.c_int]
    lib.adamw_step.restype = ctypes.c_int
    return lib, None


class _Unloadable(OSError):
    pass


def _load(path: Path) -> ctypes.CDLL:
    """Load a cached library, only if this user alone could have written it and its folder."""
    for item in (path.parent, path):
        info = item.stat()
        if info.st_uid != os.getuid() or info.st_mode & 0o022:
            raise OSError(f"{item} is not this user's alone (owner or group/other write access): not loading it")
    try:
        return ctypes.CDLL(str(path))
    except OSError as exc:
        raise _Unloadable(str(exc)) from exc


def _compiled(compiler: str) -> Path:
    """The shared library for this source, flags, compiler and CPU, compiled unless cached."""
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True, errors="replace",
                             check=True, timeout=30).stdout  # fmt: skip
    flags = FLAGS + os.environ.get("MODELCORE_NATIVE_CFLAGS", "").split()
    key = hashlib.sha256("\0".join([SOURCE.read_text(), *flags, version, _cpu()]).encode()).hexdigest()[:16]
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "stagegate" / "modelcore"
    cache = Path(os.environ.get("MODELCORE_NATIVE_CACHE") or default)
    path = cache / f"decode_step-{key}.so"
    if path.is_file():
        return path
    cache.mkdir(parents=True, exist_ok=True, mode=0o700)  # it holds code this process will load
    # Built beside its final name and renamed into place, so processes building at once never load half a file.
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=cache)
    os.close(fd)
    try:
        done = subprocess.run([compiler, *flags, str(SOURCE), "-o", tmp, "-lm"], capture_output=True, text=True,
                              errors="replace", timeout=300)  # fmt: skip
        if done.returncode:
            raise OSError(done.stderr.strip()[-2000:] or f"{compiler} exited {done.returncode}")
        os.chmod(tmp, 0o755)  # mkstemp makes it 0600; group and others may run it, not write it
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def _cpu() -> str:
    """What -march=native compiles for: the machine and, on Linux, its CPU's model and feature flags."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    wanted = [line for line in lines if line.startswith(("model name", "flags", "Features"))][:2]
    return "\n".join([platform.machine(), *wanted])
