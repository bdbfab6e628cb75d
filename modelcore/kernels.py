"""CPU inference kernels for the model's linear layers, and the choice between them.

Which fp32 kernel streams a weight matrix fastest depends on the CPU, the batch size and the threads.
Measured on the 2-core machines of bench/README.md: at batch 1, oneDNN beat MKL on a transposed copy of
the weights 1.3x on one, and lost to it 1.7x on an Intel Xeon; at batch 32, oneDNN on its own blocked
layout won on the Xeon and on an AMD EPYC. So sampling times the candidate layouts on the model's own
matrices, once per process, shapes, batch size and thread count (`fastest_layout`), instead of fixing one.

A layout is a way to hold a weight W [out, in] and multiply by it: `prepare(layout, W, batch)` returns a
Kernel computing x W^T + b, as F.linear does. A KernelSet maps modules to their kernels; within
`with kernel_set:` (in that thread only, so a model shared between threads stays correct) `linear`
calls pass through them.

At batch 1, sampling uses these only for the prompt: each later token goes through modelcore.fused.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

# oneDNN's fp32 matmul, the kernel torch.compile gives CPU linears; absent from some torch builds.
_ONEDNN_LINEAR = (
    getattr(torch.ops.mkldnn, "_linear_pointwise", None) if torch.backends.mkldnn.is_available() else None
)
_ONEDNN_PACK = (
    getattr(torch.ops.mkldnn, "_reorder_linear_weight", None) if _ONEDNN_LINEAR is not None else None
)

# A timing pass reads this much of a model's matrices where it has that many: more than CPU caches hold,
# so that the pass streams the weights from memory as sampling does.
TIMING_BYTES = 64 * 2**20
TIMING_REPEATS = 3  # passes per layout, alternated, best kept: a shared CPU disturbs some of them


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None, kernel: Kernel | None = None) -> Tensor:
    """F.linear (x W^T + b, W stored [out, in]): through `kernel` if given and no gradient is wanted,
    else on oneDNN for CPU inference (it splits a matrix-vector product across threads, as MKL does not)."""
    if torch.is_grad_enabled() or not x.is_cpu or x.dtype != torch.float32:
        return F.linear(x, weight, bias)
    if kernel is not None:
        return kernel(x, bias)
    if _ONEDNN_LINEAR is not None:
        return _ONEDNN_LINEAR(x, weight, bias, "none", [], "")
    return F.linear(x, weight, bias)


class Kernel:
    """A weight matrix held in one layout; calling it with x [..., in] and a bias gives x W^T + b."""

    def __call__(self, x: Tensor, bias: Tensor | None) -> Tensor:
        raise NotImplementedError


class OneDNN(Kernel):
    def __init__(self, weight: Tensor, batch_size: int) -> None:
        # Past batch 1 oneDNN's blocked copy of W pays; a matrix-vector product reads W as it is.
        self.weight = weight if batch_size < 2 else _ONEDNN_PACK(weight, batch_size)  # type: ignore[misc]

    def __call__(self, x: Tensor, bias: Tensor | None) -> Tensor:
        return _ONEDNN_LINEAR(x, self.weight, bias, "none", [], "")  # type: ignore[misc]


class Transposed(Kernel):
    def __init__(self, weight: Tensor, batch_size: int) -> None:
        self.weight_t = weight.t().contiguous()  # [in, out]: MKL's gemm streams it row by row

    def __call__(self, x: Tensor, bias: Tensor | None) -> Tensor:
        rows = x.reshape(-1, x.shape[-1])  # [N, in]
        out = rows @ self.weight_t if bias is None else torch.addmm(bias, rows, self.weight_t)  # [N, out]
        return out.view(*x.shape[:-1], out.shape[-1])


LAYOUTS: dict[str, type[Kernel]] = {"transposed": Transposed}
if _ONEDNN_PACK is not None:
    LAYOUTS = {"onednn": OneDNN, **LAYOUTS}
# The layout used where results must repeat across processes (see fastest_layout): kernels sum in
# different orders, so a timed choice, which can differ from one process to the next when two layouts run
# about as fast, can change the last bits of a logit and, rarely, a sampled token.
FIXED_LAYOUT = next(iter(LAYOUTS))


def prepare(layout: str, weight: Tensor, batch_size: int) -> Kernel:
    """W [out, in] held in `layout` for products of about batch_size rows (any count works); a copy of W
    except for oneDNN at batch 1."""
    check_layout(layout)
    return LAYOUTS[layout](weight.detach(), batch_size)


def check_layout(layout: str) -> None:
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; this torch build offers {sorted(LAYOUTS)}")


class KernelSet:
    """Kernels by module, in effect for `linear` calls in this thread within `with kernel_set:`."""

    def __init__(self, layout: str | None, kernels: Mapping[object, Kernel]) -> None:
        self.layout = layout  # None: nothing prepared (not an fp32 CPU model)
        self.kernels = dict(kernels)

    def __enter__(self) -> KernelSet:
        _stack().append(self.kernels)
        return self

    def __exit__(self, *exc: object) -> None:
        _stack().pop()


_active = threading.local()


def _stack() -> list[dict[object, Kernel]]:
    if not hasattr(_active, "stack"):
        _active.stack = []
    return _active.stack


def active_kernel(module: object) -> Kernel | None:
    """The kernel the innermost KernelSet in effect in this thread holds for module, if any."""
    stack = _stack()
    return stack[-1].get(module) if stack else None


_fastest: dict[tuple, str] = {}
_fastest_lock = threading.Lock()  # two threads timing at once would disturb each other's passes


def fastest_layout(weights: Sequence[Tensor], batch_size: int) -> str:
    """The layout whose kernels run a pass over these matrices fastest with batch_size rows (remembered).

    Timed on one matrix of each shape, then on more in order until TIMING_BYTES are covered (all of them
    for small models), so that every shape counts and the pass streams from memory as sampling does.
    Under torch.use_deterministic_algorithms(True) nothing is timed: the answer is FIXED_LAYOUT.
    """
    if torch.are_deterministic_algorithms_enabled():
        return FIXED_LAYOUT
    first = weights[0]
    shapes = tuple(tuple(w.shape) for w in weights)
    key = (shapes, first.dtype, first.device, batch_size, torch.get_num_threads())
    with _fastest_lock:
        if key not in _fastest:
            times = _pass_times(_timing_sample(weights), batch_size)
            _fastest[key] = min(times, key=times.__getitem__)
        return _fastest[key]


def _timing_sample(weights: Sequence[Tensor]) -> list[Tensor]:
    shapes, sample, size = set(), [], 0
    for w in weights:
        if tuple(w.shape) not in shapes or size < TIMING_BYTES:
            shapes.add(tuple(w.shape))
            sample.append(w.detach())
            size += w.numel() * w.element_size()
    return sample


def _pass_times(weights: list[Tensor], batch_size: int) -> dict[str, float]:
    """Best wall time of a pass over the matrices in each layout, passes alternated between layouts."""
    with torch.inference_mode():
        # Not torch.randn: timing must not move the global random stream that callers may have seeded.
        inputs = [torch.ones(batch_size, w.shape[1], dtype=w.dtype) for w in weights]
        kernels = {name: [prepare(name, w, batch_size) for w in weights] for name in LAYOUTS}
        best = dict.fromkeys(kernels, float("inf"))
        for repeat in range(TIMING_REPEATS + 1):  # the first pass warms up and is not counted
            for name, layer_kernels in kernels.items():
                elapsed = _time_pass(layer_kernels, inputs)
                if repeat:
                    best[name] = min(best[name], elapsed)
    return best


def _time_pass(kernels: list[Kernel], inputs: list[Tensor]) -> float:
    start = time.perf_counter()
    for kernel, x in zip(kernels, inputs, strict=True):
        kernel(x, None)
    return time.perf_counter() - start
