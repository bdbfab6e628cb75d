"""A training step's update: the gradients clipped to a global norm, then torch's AdamW, in two native passes
over the parameters where torch makes three and a norm per tensor.

torch.nn.utils.clip_grad_norm_ takes each gradient's norm, then scales every gradient in place, and the fused
AdamW reads them all once more: at GPT-2 124M, 140-160 ms of a 1.1-1.4 s bf16 step on a 2-core Xeon. Here the
norm is one pass that reads each gradient once (native.sum_of_squares) and AdamW applies the clipping factor
as it reads the gradient (native.adamw_step), leaving the gradients as backward left them: 108-123 ms there
(bench/README.md).

The optimizer stays torch's AdamW: its groups, hyper-parameters and state (step, exp_avg, exp_avg_sq) are read
and written in its own layout, so its checkpoints load either way and either path can continue the other's
run. Where anything does not fit (no native library, a tensor not fp32 on the CPU, amsgrad, maximize, a tensor
learning rate, step hooks on the optimizer), torch's own clip_grad_norm_ and step: the reference this path is
tested against.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.graph import increment_version
from torch.optim import optimizer as torch_optimizer

from . import native


def clip_and_step(optimizer: torch.optim.AdamW, clip: float) -> None:
    """Clip the gradients of optimizer's parameters to a global L2 norm of clip (0: no clipping) as
    torch.nn.utils.clip_grad_norm_ does, then take optimizer's step."""
    if not _native_step(optimizer, clip):
        if clip > 0:
            torch.nn.utils.clip_grad_norm_([p for group in optimizer.param_groups for p in group["params"]], clip)
        optimizer.step()


def _native_step(optimizer: torch.optim.AdamW, clip: float) -> bool:
    groups = [(group, [p for p in group["params"] if p.grad is not None]) for group in optimizer.param_groups]
    if not (type(optimizer) is torch.optim.AdamW and not _has_step_hooks(optimizer) and native.library() is not None
            and all(_fits_group(optimizer, group, params) for group, params in groups)):  # fmt: skip
        return False
    scale = 1.0
    if clip > 0:
        total = native.sum_of_squares([p.grad for _, params in groups for p in params])
        if total is None:
            return False
        # torch's factor: clip / (norm + 1e-6), at most 1 (NaN stays NaN, as there).
        scale = min(clip / (total**0.5 + 1e-6), 1.0)
    for group, params in groups:
        by_step: dict[int, list[Tensor]] = {}
        for p in params:
            state = optimizer.state[p]
            if not state:  # as torch's AdamW starts a parameter's state
                dtype = torch.float32 if group.get("fused") else torch.get_default_dtype()
                state["step"] = torch.zeros((), dtype=dtype, device=p.device)
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["step"] += 1
            by_step.setdefault(int(state["step"]), []).append(p)
        for step, same in by_step.items():  # a parameter without a gradient in some step is a step behind
            states = [optimizer.state[p] for p in same]
            done = native.adamw_step(same, [p.grad for p in same], [s["exp_avg"] for s in states],
                                     [s["exp_avg_sq"] for s in states], lr=group["lr"], betas=group["betas"],
                                     eps=group["eps"], weight_decay=group["weight_decay"], step=step,
                                     grad_scale=scale)  # fmt: skip
            if not done:
                raise MemoryError("no memory for the optimizer step's chunk table")
            # Written through pointers: tell autograd, so that a graph saved before the step still refuses
            # a backward pass after it, as after torch's step.
            increment_version(same + [s[key] for s in states for key in ("exp_avg", "exp_avg_sq")])
    return True


def _has_step_hooks(optimizer: torch.optim.Optimizer) -> bool:
    """Whether hooks are registered around this optimizer's steps (its own or every optimizer's): torch's step
    runs them, the native one would not."""
    own = (getattr(optimizer, name, None) for name in ("_optimizer_step_pre_hooks", "_optimizer_step_post_hooks"))
    every = (getattr(torch_optimizer, name, None)
             for name in ("_global_optimizer_pre_hooks", "_global_optimizer_post_hooks"))  # fmt: skip
    return any(own) or any(every)


def _fits_group(optimizer: torch.optim.AdamW, group: dict, params: list[Tensor]) -> bool:
    if (group["amsgrad"] or group["maximize"] or group.get("capturable") or group.get("differentiable")
            or any(torch.is_tensor(group[key]) for key in ("lr", "eps", "weight_decay"))
            or any(torch.is_tensor(beta) for beta in group["betas"])):  # fmt: skip
        return False
    tensors = [t for p in params for t in (p, p.grad, *(optimizer.state[p].get(k) for k in ("exp_avg", "exp_avg_sq")))
               if t is not None]  # fmt: skip
    return all(t.layout == torch.strided and t.is_cpu and t.dtype == torch.float32 and t.is_contiguous()
               for t in tensors)  # fmt: skip
