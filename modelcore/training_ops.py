"""Training's operators with a backward of their own, on the CPU; model.py's layers call them.

The tied output layer's loss fused with its product (LinearCrossEntropy) and its embedding (TiedEmbedding), which
share one gradient for the tied weight; under bf16 autocast, the linears (Bf16Linear), the causal attention
(CausalAttention), the GELU (Gelu) and the residual stream's layer norms (ResidualNorm); and KeptMemory, the
large temporaries they keep from one step to the next. Each computes what torch's own operators compute
(tests/modelcore/test_model.py holds them to torch's), in fewer passes over memory and without fresh memory
every step: bench/README.md has the figures.
"""

from __future__ import annotations

import math
import threading
import weakref

import torch
import torch.nn.functional as F
from torch import Tensor

from . import native, products


class KeptMemory:
    """Large temporaries of a training step, kept for the next step: a linear layer's bf16 weight, the product
    of its gradient and its fp32 gradient (Bf16Linear); the tied output layer's logits and the same three
    (77 to 206 MB each at GPT-2's vocabulary); an attention layer's probabilities, and (in one that every
    layer's backward pass shares) their gradient. glibc hands memory of this size back to the system when it is
    freed, and on the 2-core VMs of bench/README.md faulting it in again costs a few us a 4 KB page: at GPT-2
    124M in bf16, a sixth of the step.

    One forward pass at a time holds it (claim), until its backward is done with it or its graph is dropped
    (one backward pass, for the shared one); another meanwhile (two losses before one backward, or a model
    training in another thread) uses fresh memory.
    """

    def __init__(self) -> None:
        self._kept: dict[str, Tensor] = {}
        self._holder: weakref.ref | None = None
        self._lock = threading.Lock()  # the shared one is claimed from any thread that trains

    def __reduce__(self):  # a copied or pickled model gets memory of its own, empty (scratch, not state)
        return KeptMemory, ()

    def claim(self, holder: object) -> bool:
        """Whether holder may use the kept memory: none other holds it."""
        with self._lock:
            if self._holder is not None and self._holder() is not None:
                return False
            self._holder = weakref.ref(holder)  # dies with the holder's graph if its backward never comes
            return True

    def release(self, holder: object) -> None:
        with self._lock:
            if self._holder is not None and self._holder() is holder:
                self._holder = None

    def buffer(self, name: str, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> Tensor:
        kept = self._kept.get(name)
        if kept is None or kept.shape != shape or kept.dtype != dtype or kept.device != device:
            kept = self._kept[name] = torch.empty(shape, dtype=dtype, device=device)
        return kept


def _gradient_memory(memory: KeptMemory, weight: Tensor) -> Tensor:
    """fp32 memory for a weight's whole gradient: a new tensor over kept memory, which autograd takes as
    weight.grad without a copy (no other tensor object refers to it). weight.grad is then that memory, valid
    until the next backward pass writes it again, as a training loop's zero_grad expects; where .grad still
    holds it then (micro-batches accumulating), fresh memory, which autograd adds there."""
    kept = memory.buffer("gradient", weight.shape, torch.float32, weight.device)
    grad = weight.grad
    if grad is not None and grad.untyped_storage().data_ptr() == kept.untyped_storage().data_ptr():
        return torch.empty_like(kept)
    return kept.view(kept.shape)


class Bf16Linear(torch.autograd.Function):
    """x W^T + b as CPU autocast computes it in bf16 (x, W and b cast to bf16, the products in bf16, the gradients
    of W and b rounded to bf16 and then cast to fp32), with W's bf16 copy, the product of its gradient and
    its fp32 gradient in the layer's KeptMemory where this pass holds it. Autocast cast W and that gradient
    into fresh memory every step: at GPT-2 124M's MLP sizes, faulting it in took 12% of the bf16 step. The
    products run in modelcore.products' fastest forms: large ones agree with autocast's within bf16's rounding."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None, memory: KeptMemory) -> Tensor:
        kept = memory.claim(ctx)
        low = torch.bfloat16
        with torch.autocast("cpu", enabled=False):
            w = memory.buffer("weight", weight.shape, low, weight.device).copy_(weight) if kept else weight.to(low)
            x_low = x.to(low)
            y = products.mm(x_low.reshape(-1, w.shape[1]), w.t(), bias=None if bias is None else bias.to(low))
            y = y.view(*x.shape[:-1], w.shape[0])
        ctx.save_for_backward(x_low, w)
        ctx.x_dtype, ctx.has_bias, ctx.weight, ctx.memory = x.dtype, bias is not None, weight, memory if kept else None
        return y

    @staticmethod
    def backward(ctx, grad_y: Tensor) -> tuple[Tensor, Tensor, Tensor | None, None]:
        x, w = ctx.saved_tensors
        memory = ctx.memory
        with torch.autocast("cpu", enabled=False):
            rows = grad_y.to(w.dtype).reshape(-1, w.shape[0])  # [N, out]
            grad_x = products.mm(rows, w).view(x.shape).to(ctx.x_dtype)
            inputs = x.reshape(-1, w.shape[1])  # [N, in]
            if memory is None:
                grad_w = products.mm(rows.t(), inputs).float()
            else:
                product = products.mm(rows.t(), inputs, out=memory.buffer("product", w.shape, w.dtype, w.device))
                grad_w = _gradient_memory(memory, ctx.weight).copy_(product)
                memory.release(ctx)
            grad_b = rows.sum(0).float() if ctx.has_bias else None  # summed in fp32, rounded to bf16
        return grad_x, grad_w, grad_b, None


class TiedGradient:
    """The output layer's weight gradient on its way to the token embedding's backward (TiedEmbedding), which
    runs last and adds its rows to it: one [V, C] gradient for the tied weight, where nn.Embedding zeroed a
    fresh one for its rows and autograd summed the two into a third. `memory` is the output layer's
    KeptMemory where this forward pass holds it, else None."""

    def __init__(self, weight: Tensor, memory: KeptMemory) -> None:
        self.weight = weight
        self.memory = memory if memory.claim(self) else None
        self.output: Tensor | None = None  # the output layer's part, in the products' dtype


class TiedEmbedding(torch.autograd.Function):
    """weight[idx], the token embedding, whose weight is also the output layer's (LinearCrossEntropy, given the
    same TiedGradient): the weight's whole gradient comes from this backward."""

    @staticmethod
    def forward(ctx, idx: Tensor, weight: Tensor, tie: TiedGradient) -> Tensor:
        ctx.save_for_backward(idx)
        ctx.tie = tie
        return F.embedding(idx, weight)

    @staticmethod
    def backward(ctx, grad_x: Tensor) -> tuple[None, Tensor, None]:
        (idx,) = ctx.saved_tensors
        tie = ctx.tie
        output, tie.output = tie.output, None
        if output is not None and output.dtype == torch.float32:
            grad = output  # the product went straight to the gradient's memory
        else:
            grad = _gradient_memory(tie.memory, tie.weight) if tie.memory else torch.empty_like(tie.weight)
            grad.zero_() if output is None else grad.copy_(output)  # None: the output layer was not in this graph
        grad.index_add_(0, idx.flatten(), grad_x.reshape(-1, grad.shape[1]).to(grad.dtype))
        if tie.memory:
            tie.memory.release(tie)
        return None, grad, None


class LinearCrossEntropy(torch.autograd.Function):
    """Mean cross-entropy of the logits h W^T against targets (-1 = ignored), gradient included.

    The same loss as F.cross_entropy(linear(h, W), targets), but computed in one [N, V] buffer, where
    log_softmax, nll_loss and their backward would allocate and sweep three more: at GPT-2 sizes the
    largest memory traffic of a training step. Given a TiedGradient, W's gradient goes to TiedEmbedding's
    backward instead of autograd, and where the tie holds the output layer's KeptMemory, the logits, W in
    the products' dtype and the product of W's gradient reuse it.
    """

    @staticmethod
    @torch.amp.custom_fwd(device_type="cuda", cast_inputs=torch.float32)  # the softmax wants fp32
    def forward(ctx, h: Tensor, weight: Tensor, targets: Tensor, tie: TiedGradient | None = None) -> Tensor:
        # Under CPU autocast (bf16 training, modelcore/train.py) the two products of each pass run in its
        # dtype, as autocast runs every other linear, and the softmax still in fp32.
        low = torch.get_autocast_dtype("cpu") if h.is_cpu and torch.is_autocast_enabled("cpu") else None
        memory = tie.memory if tie is not None else None  # the kept memory, where this pass holds it
        with torch.autocast("cpu", enabled=False):
            if low is not None:
                h = h.to(low)
                weight = weight.to(low) if memory is None else memory.buffer("weight", weight.shape, low,
                                                                              weight.device).copy_(weight)
            if memory is None:
                logits = products.mm(h, weight.t())  # [N, V]
            else:
                shape = (h.shape[0], weight.shape[0])
                logits = products.mm(h, weight.t(), out=memory.buffer("logits", shape, h.dtype, h.device))
            valid = (targets >= 0).unsqueeze(1)  # [N, 1]
            count = valid.sum()
            # bf16: the row losses and, in the logits' memory, the gradient, in one native pass (softmax in fp32).
            losses = native.cross_entropy_bf16(logits, targets) if low == torch.bfloat16 else None
            if losses is not None:
                loss, grad = losses.sum() / count, logits
            else:
                # In place (the row-wise kernel reads a row before writing it): one [N, V] buffer serves the
                # logits, the log-probabilities and the gradient; a fresh one costs tens of ms in page faults at
                # 16 x 256 tokens. No copy when the product is fp32.
                logits = logits.float()
                log_probs = torch._log_softmax(logits, -1, False, out=logits)
                index = targets.clamp(min=0).unsqueeze(1)  # [N, 1]
                loss = -(log_probs.gather(1, index) * valid).sum() / count
                grad = log_probs.exp_()  # [N, V] softmax, in the same memory
                grad.scatter_add_(1, index, -valid.to(grad.dtype))  # softmax - one-hot (ignored rows: weighted 0)
        ctx.save_for_backward(h, weight, grad, valid, count)
        ctx.tie = tie
        return loss

    @staticmethod
    @torch.amp.custom_bwd(device_type="cuda")
    def backward(ctx, grad_loss: Tensor) -> tuple[Tensor, Tensor | None, None, None]:
        h, weight, grad, valid, count = ctx.saved_tensors  # h and weight in the products' dtype
        tie = ctx.tie
        # The loss's scale, and 0 for ignored rows, applied to [N, C] tensors only: never a pass over [N, V]
        # or over the [V, C] gradient (154 MB at GPT-2 124M's shape), nor a sync with the device.
        weights = valid.to(grad_loss.dtype) * (grad_loss / count)  # [N, 1]
        with torch.autocast("cpu", enabled=False):
            grad = grad.to(h.dtype)
            grad_h = products.mm(grad, weight).float() * weights
            scaled_h = (h.float() * weights).to(h.dtype)
            if tie is None:
                return grad_h, _weight_gradient(grad, scaled_h).float(), None, None
            into = None
            if tie.memory is not None:
                into = (_gradient_memory(tie.memory, tie.weight) if h.dtype == torch.float32
                        else tie.memory.buffer("product", weight.shape, h.dtype, weight.device))
            tie.output = _weight_gradient(grad, scaled_h, into)
        return grad_h, None, None, None  # the weight's gradient: TiedEmbedding's backward completes tie.output


# The output layer's weight gradient goes in blocks of this many vocabulary rows: at GPT-2's 50,257 the bf16
# product ran at 350 GFLOP/s in one piece and 425 in blocks (bench/README.md), and no slower in fp32.
VOCAB_BLOCK_ROWS = 8192


def _weight_gradient(grad: Tensor, h: Tensor, out: Tensor | None = None) -> Tensor:
    """grad^T h, the output layer's weight gradient [V, C] from the logits' gradient [N, V] and h [N, C], into
    out where given, VOCAB_BLOCK_ROWS rows of it at a time."""
    if out is None:
        out = h.new_empty(grad.shape[1], h.shape[1])
    for start in range(0, grad.shape[1], VOCAB_BLOCK_ROWS):
        end = start + VOCAB_BLOCK_ROWS
        products.mm(grad[:, start:end].t(), h, out=out[start:end])
    return out


# Training's bf16 attention keeps its probabilities (about half a [T, T] matrix) for the backward pass, where
# flash attention keeps none: beyond this many bytes of them per layer it stays on flash attention.
SCORES_BYTES_MAX = 64 * 2**20
# Its score matrix goes in blocks of this many query rows, each against the keys up to its last row: the
# products skip most of the matrix's masked half (3/8 of it at 4 blocks) at little cost in the products' speed.
QUERY_BLOCK_ROWS = 256


def _query_block_size(T: int) -> int:
    """Query rows a block: QUERY_BLOCK_ROWS, or half of T where T is shorter."""
    return QUERY_BLOCK_ROWS if T > QUERY_BLOCK_ROWS else max(1, (T + 1) // 2)


def _query_blocks(T: int) -> list[tuple[int, int]]:
    """The query rows [start, end) of each block (the last one shorter where they do not divide T)."""
    size = _query_block_size(T)
    return [(start, min(start + size, T)) for start in range(0, T, size)]


def _probability_count(T: int) -> int:
    """Probabilities a (batch row, head) keeps: each block's rows x its keys."""
    return sum((end - start) * end for start, end in _query_blocks(T))


def _causal_softmax(scores: Tensor, scale: float, offset: int = 0) -> Tensor:
    """The reference for native.causal_softmax_bf16: the softmax in fp32, rounded to the scores' dtype."""
    rows, cols = scores.shape[-2:]
    future = torch.ones(rows, cols, dtype=torch.bool, device=scores.device).triu(1 + offset)
    return torch.softmax((scores.float() * scale).masked_fill(future, -math.inf), -1).to(scores.dtype)


def _causal_softmax_backward(probs: Tensor, grad: Tensor, scale: float) -> Tensor:
    """The reference for native.causal_softmax_backward_bf16 (the masked probabilities are 0: any offset)."""
    p, g = probs.float(), grad.float()
    return (p * (g - (p * g).sum(-1, keepdim=True)) * scale).to(grad.dtype)


class CausalAttention(torch.autograd.Function):
    """Causal self-attention softmax(q k^T / sqrt(hd)) v of bf16 q, k, v [B, H, T, hd]: training's attention under
    CPU autocast in bf16, where flash attention ran at a sixth of the CPU's bf16 product speed and took a quarter
    of the mini-13m step (bench/README.md).

    The score matrix goes in blocks of query rows (_query_blocks), each against the keys up to its last row; a
    block's products are torch's bf16 matrix products, and between them one native pass each way turns scores
    into probabilities and probabilities' gradients into the scores' (softmax in fp32, as autocast's eager
    attention computes it, on the scores rounded to bf16). On CPUs with AVX512-BF16 units and no AMX, the
    product before each pass (q k^T, and the probabilities' gradient grad_y v^T, both only hd deep) is fused
    into it and kept in fp32 (native.causal_attention_probs_bf16, causal_attention_scores_grad_bf16): torch
    ran those two at half the speed of the others, and up to the block's last row; and the values' and keys'
    gradients, products of the blocks transposed, go in one native call each over all blocks
    (causal_attention_column_products_bf16), summed in fp32 and rounded once. The probabilities stay for the
    backward pass: B·H·_probability_count(T) values (CausalSelfAttention keeps flash attention beyond
    SCORES_BYTES_MAX), in the layer's KeptMemory where given and free; their gradient, as many values, in one
    KeptMemory that every layer's backward pass shares.
    """

    @staticmethod
    def forward(ctx, q: Tensor, k: Tensor, v: Tensor, memory: KeptMemory | None = None) -> Tensor:
        scale = q.shape[-1] ** -0.5
        B, H, T, hd = q.shape
        shape = (B * H * _probability_count(T),)
        with torch.autocast("cpu", enabled=False):
            # [B·H, T, hd] once: each block's products would otherwise copy their slices of the qkv projection, and
            # the native passes read rows hd apart (at batch 1 a reshape alone leaves them 3C apart).
            q, k, v = (x.reshape(B * H, T, hd).contiguous() for x in (q, k, v))
            kept = memory is not None and memory.claim(ctx)
            flat = memory.buffer("probs", shape, q.dtype, q.device) if kept else q.new_empty(shape)
            y = q.new_empty(B * H, T, hd)
            for (start, end), probs in zip(_query_blocks(T), _blocks(flat, B * H, T), strict=True):
                if not native.causal_attention_probs_bf16(q, k, probs, scale, start):
                    torch.bmm(q[:, start:end], k[:, :end].transpose(1, 2), out=probs)  # scores, then in place
                    if not native.causal_softmax_bf16(probs, scale, start):  # their probabilities
                        probs.copy_(_causal_softmax(probs, scale, start))
                torch.bmm(probs, v[:, :end], out=y[:, start:end])
            ctx.save_for_backward(q, k, v, flat)
            ctx.scale, ctx.memory = scale, memory if kept else None
            return y.view(B, H, T, hd)

    @staticmethod
    def backward(ctx, grad_y: Tensor) -> tuple[Tensor, Tensor, Tensor, None]:
        q, k, v, flat = ctx.saved_tensors  # each [B·H, T, hd]
        B, H, T, hd = grad_y.shape
        with torch.autocast("cpu", enabled=False):
            grad_y = grad_y.to(v.dtype).reshape(B * H, T, hd).contiguous()
            kept = _BACKWARD_MEMORY.claim(ctx)
            grad_flat = (_BACKWARD_MEMORY.buffer("grad", flat.shape, q.dtype, q.device) if kept
                         else torch.empty_like(flat))
            blocks, grad_blocks = _blocks(flat, B * H, T), _blocks(grad_flat, B * H, T)
            grad_q = q.new_empty(q.shape)
            for (start, end), probs, grad_s in zip(_query_blocks(T), blocks, grad_blocks, strict=True):
                if not native.causal_attention_scores_grad_bf16(grad_y, v, probs, grad_s, ctx.scale, start):
                    torch.bmm(grad_y[:, start:end], v[:, :end].transpose(1, 2), out=grad_s)  # the probabilities'
                    if not native.causal_softmax_backward_bf16(probs, grad_s, ctx.scale, start):  # gradient, then
                        grad_s.copy_(_causal_softmax_backward(probs, grad_s, ctx.scale))  # the scores' in place
                torch.bmm(grad_s, k[:, :end], out=grad_q[:, start:end])
            grad_k, grad_v = q.new_empty(q.shape), q.new_empty(q.shape)
            size = _query_block_size(T)
            if not (native.causal_attention_column_products_bf16(flat, grad_y, grad_v, size)
                    and native.causal_attention_column_products_bf16(grad_flat, q, grad_k, size)):
                grad_k.zero_()
                grad_v.zero_()
                for (start, end), probs, grad_s in zip(_query_blocks(T), blocks, grad_blocks, strict=True):
                    grad_v[:, :end].baddbmm_(probs.transpose(1, 2), grad_y[:, start:end])  # in place: no temporary
                    grad_k[:, :end].baddbmm_(grad_s.transpose(1, 2), q[:, start:end])
        if kept:
            _BACKWARD_MEMORY.release(ctx)
        if ctx.memory is not None:
            ctx.memory.release(ctx)
        return *(grad.view(B, H, T, hd) for grad in (grad_q, grad_k, grad_v)), None


# The scores' gradient of one attention layer's backward pass at a time, for every layer (the probabilities
# are each layer's own, from its forward pass to its backward).
_BACKWARD_MEMORY = KeptMemory()


def _blocks(flat: Tensor, matrices: int, T: int) -> list[Tensor]:
    """flat's consecutive [matrices, rows, keys] blocks, one per _query_blocks(T)."""
    blocks, at = [], 0
    for start, end in _query_blocks(T):
        size = matrices * (end - start) * end
        blocks.append(flat[at : at + size].view(matrices, end - start, end))
        at += size
    return blocks


def runs_native_attention(q: Tensor, dropout: float) -> bool:
    """Whether training's attention over q [B, H, T, hd] runs as CausalAttention."""
    B, H, T, _ = q.shape
    return (dropout == 0 and q.dtype == torch.bfloat16 and q.is_cpu and torch.is_grad_enabled() and T > 1
            and B * H * _probability_count(T) * q.element_size() <= SCORES_BYTES_MAX
            and native.library() is not None)  # fmt: skip


class ResidualNorm(torch.autograd.Function):
    """LayerNorm of the fp32 residual stream x, or of x + branch (a bf16 branch's output), in bf16 for the linear
    layer that reads it: training under CPU bf16 autocast, where torch's add, LayerNorm (in fp32) and the
    linear's cast each made a pass forward and back (bench/README.md). Returns the normalised bf16 values, and
    given a branch first the stream x + branch in fp32; computed as autocast computes them, in fp32 from the same
    values and rounded to bf16 once (native.layer_norm_bf16)."""

    @staticmethod
    def forward(ctx, x: Tensor, branch: Tensor | None, weight: Tensor, bias: Tensor, eps: float
                ) -> Tensor | tuple[Tensor, Tensor]:
        done = native.layer_norm_bf16(x.contiguous(), weight, bias, eps,
                                      None if branch is None else branch.contiguous())
        if done is None:
            raise RuntimeError("ResidualNorm takes what runs_native_norm accepts")
        stream, out, mean, rstd = done
        ctx.save_for_backward(stream, mean, rstd, weight)
        ctx.has_branch = branch is not None
        return (stream, out) if ctx.has_branch else out

    @staticmethod
    def backward(ctx, *grads: Tensor) -> tuple[Tensor, Tensor | None, Tensor, Tensor, None]:
        stream, mean, rstd, weight = ctx.saved_tensors
        grad_stream, grad_out = grads if ctx.has_branch else (None, grads[0])
        through = None if grad_stream is None else grad_stream.float().contiguous()
        done = native.layer_norm_backward_bf16(stream, mean, rstd, weight, grad_out.to(torch.bfloat16).contiguous(),
                                               through, low=ctx.has_branch)
        if done is None:
            raise MemoryError("no memory for the LayerNorm gradient's per-thread sums")
        grad_x, grad_branch, grad_w, grad_b = done
        return grad_x, grad_branch, grad_w, grad_b, None


def runs_native_norm(x: Tensor, norm: torch.nn.LayerNorm) -> bool:
    """Whether training's LayerNorm of the stream x [.., C] runs as ResidualNorm: under CPU bf16 autocast, with
    a gradient, where the library builds."""
    return (x.is_cpu and x.dtype == torch.float32 and torch.is_grad_enabled() and torch.is_autocast_enabled("cpu")
            and torch.get_autocast_dtype("cpu") == torch.bfloat16 and norm.weight is not None and norm.bias is not None
            and norm.weight.dtype == torch.float32 and native.library() is not None)  # fmt: skip


class Gelu(torch.autograd.Function):
    """GPT-2's tanh GELU of training's activations on the CPU, both ways in one native pass each: in bf16 (under
    autocast) torch's pair took 7% of the mini-13m step, in fp32 5% at a quarter of these passes' speed
    (bench/README.md). Computed in fp32 as torch computes it; bf16 rounds as torch rounds (in GELU's negative
    tail, below -3 and under 1e-5, the two round differently), fp32 agrees within ~5e-7 (another e^x)."""

    @staticmethod
    def forward(ctx, u: Tensor) -> Tensor:
        ctx.save_for_backward(u)
        out = native.gelu(u)
        return out if out is not None else F.gelu(u, approximate="tanh")

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (u,) = ctx.saved_tensors
        grad = grad.to(u.dtype).contiguous()
        out = native.gelu_backward(u, grad)
        return out if out is not None else torch.ops.aten.gelu_backward(grad, u, approximate="tanh")


def gelu(u: Tensor) -> Tensor:
    """GPT-2's GELU, the tanh form: natively for training's bf16 or fp32 activations where the library builds."""
    if u.dtype in native.GELU_DTYPES and u.is_cpu and u.is_contiguous() and torch.is_grad_enabled() \
            and u.requires_grad and native.library() is not None:
        return Gelu.apply(u)
    return F.gelu(u, approximate="tanh")
