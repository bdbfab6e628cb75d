"""Training's bf16 matrix products on the CPU, each run in the fastest of a few equivalent forms, timed once.

oneDNN's AMX kernels run some of GPT-2 124M's products at half the rate of others with the same work on a 2-core
Xeon: [1,024 × 3,072] by [3,072 × 768] (an MLP's output layer) took 6.2 ms whole and 3.6 ms as two products of
512 rows each, while [1,024 × 768] by [768 × 3,072] took 3.0 ms whole and more in blocks (bench/README.md). Which
products suffer, and what helps them, depends on the CPU, the thread count and the library's version, so each
distinct product (shapes, strides, dtype, bias, threads) is timed in every form the first time it comes, once per
process, and the fastest form is kept, as torch.backends.cudnn.benchmark picks convolution algorithms (and as
modelcore/kernels.py picks sampling's layouts). Under torch.use_deterministic_algorithms(True) nothing is timed:
every product is torch's, whole, as are the small ones (MIN_TIMED_MACS).

The forms are the whole product and its rows in 2 or 4 blocks. Every output element is the same dot product in
fp32 accumulation, but a kernel may block its sum over the shared dimension differently for a different number
of rows: the forms' results agree within bf16's rounding (one unit in the last place), not bit for bit. So bf16
training on the CPU repeats itself bit for bit within a process, and across processes (a resumed run, the ranks
and hosts of a data-parallel one) where they choose the same forms: likely on alike machines (FORM_MARGIN), not
certain. fp32, the CPU's default, is torch's product as before.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

ROW_BLOCKS = (1, 2, 4)  # the forms: the product's rows in this many blocks (1: torch's product as it is)
TIMED_RUNS = 3  # per form, alternated, after one that warms each up; its fastest run counts (two misjudged one
# product of a GPT-2 124M step in one of three tries on a busy 2-core machine)
# Smaller products run whole, as torch runs them: a faster form could give back little of its timing there.
MIN_TIMED_MACS = 1 << 26
# A form in blocks is taken only where it is this much quicker than the whole product: near ties stay torch's
# product, so that processes on alike machines choose alike (the forms round differently) and noise decides less.
FORM_MARGIN = 0.15

_chosen: dict[tuple, int] = {}
_lock = threading.Lock()


def mm(a: Tensor, b: Tensor, *, bias: Tensor | None = None, out: Tensor | None = None) -> Tensor:
    """a @ b (+ bias [cols] broadcast over the rows), into out where given, as torch.mm / torch.addmm compute it
    (callers turn autocast off first): bf16 products on the CPU in their fastest form here, anything else as
    torch runs it."""
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (a, b, bias)):
        # A graph through the product (a backward pass with create_graph=True): torch's, which records one.
        product = torch.mm(a, b) if bias is None else torch.addmm(bias, a, b)
        return product if out is None else out.copy_(product)
    if out is None:
        out = a.new_empty(a.shape[0], b.shape[1]) if a.dim() == b.dim() == 2 else torch.mm(a, b)  # torch's error
    if not _timed_here(a, b, bias, out):
        return _product(a, b, bias, out, 1)
    key = (tuple(a.shape), a.stride(), tuple(b.shape), b.stride(), bias is not None, torch.get_num_threads())
    blocks = _chosen.get(key)
    if blocks is None:
        blocks = fastest([lambda n=n: _product(a, b, bias, out, n) for n in ROW_BLOCKS], ROW_BLOCKS,
                         margin=FORM_MARGIN)
        with _lock:
            _chosen[key] = blocks
    return _product(a, b, bias, out, blocks)


def _timed_here(a: Tensor, b: Tensor, bias: Tensor | None, out: Tensor) -> bool:
    """Whether this product goes in its fastest form: a large bf16 one on the CPU, outside deterministic mode."""
    if not (a.dtype == b.dtype == torch.bfloat16 and a.is_cpu and a.dim() == b.dim() == 2):
        return False
    plain = out.is_contiguous() and (bias is None or bias.dim() == 1)
    large = a.shape[0] * a.shape[1] * b.shape[1] >= MIN_TIMED_MACS
    return plain and large and not torch.are_deterministic_algorithms_enabled()


def chosen() -> dict[tuple, int]:
    """The forms chosen so far: (a's shape and strides, b's, bias or not, threads) -> row blocks."""
    with _lock:
        return dict(_chosen)


def fastest(runs: Sequence[Callable[[], object]], names: Sequence[int], *, margin: float = 0.0) -> int:
    """The name of the run that took the least time (each run once to warm up, then TIMED_RUNS times in turn),
    the first's unless another took less than (1 - margin) of its time."""
    for run in runs:
        run()
    seconds = [math.inf] * len(runs)
    for _ in range(TIMED_RUNS):
        for i, run in enumerate(runs):
            seconds[i] = min(seconds[i], _timed(run))
    quickest = seconds.index(min(seconds))
    return names[quickest] if seconds[quickest] < (1 - margin) * seconds[0] else names[0]


def _timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def _product(a: Tensor, b: Tensor, bias: Tensor | None, out: Tensor, blocks: int) -> Tensor:
    rows = a.shape[0]
    size = max(1, -(-rows // blocks))  # the last block takes what is left (none: no rows)
    for start in range(0, rows, size):
        end = min(start + size, rows)
        if bias is None:
            torch.mm(a[start:end], b, out=out[start:end])
        else:
            torch.addmm(bias, a[start:end], b, out=out[start:end])
    return out
