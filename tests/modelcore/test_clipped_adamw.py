"""The native clipping and AdamW step against torch's clip_grad_norm_ and AdamW, the reference path beside it."""

import copy
import math

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

from modelcore import clipped_adamw, native
from modelcore.clipped_adamw import clip_and_step
from modelcore.model import GPT, GPTConfig
from modelcore.train import TrainSettings, optimizer_for

CONFIG = GPTConfig(n_vocab=300, n_ctx=32, n_embd=64, n_head=4, n_layer=2)


def _reference(optimizer, clip):
    if clip > 0:
        torch.nn.utils.clip_grad_norm_([p for group in optimizer.param_groups for p in group["params"]], clip)
    optimizer.step()


def _pair(lr=1e-2, **adamw):
    """A model and its AdamW (training's groups, with adamw's settings), and an identical twin of both."""
    torch.manual_seed(0)
    model = GPT(CONFIG)
    pair = []
    for each in (model, copy.deepcopy(model)):
        optimizer = optimizer_for(each, TrainSettings(lr=lr))
        for group in optimizer.param_groups:
            group.update(adamw)
        pair.append((each, optimizer))
    return pair


def _give_gradients(models, scale, seed, skip=()):
    generator = torch.Generator().manual_seed(seed)
    for params in zip(*(m.parameters() for m in models), strict=True):
        g = None if params[0].shape in skip else torch.randn(params[0].shape, generator=generator) * scale
        for p in params:
            p.grad = None if g is None else g.clone()


def _assert_same_state(a, b, exact=False):
    """The same parameters and AdamW state. exact: bit for bit (no clipping factor, or the same code); else
    within what a clipping factor rounded differently gives (torch sums the norm in another order)."""
    (model, optimizer), (twin, twin_optimizer) = a, b
    for p, q in zip(model.parameters(), twin.parameters(), strict=True):
        s, t = optimizer.state[p], twin_optimizer.state[q]
        assert s.keys() == t.keys()
        for x, y in [(p.detach(), q.detach())] + [(s[key], t[key]) for key in s]:
            assert x.dtype == y.dtype and x.shape == y.shape
            scale = float(y.nan_to_num(0, 0, 0).abs().max()) if y.numel() else 0.0
            tolerance = (0, 0) if exact else (1e-5, 1e-6 * scale)
            torch.testing.assert_close(x, y, rtol=tolerance[0], atol=tolerance[1], equal_nan=True)


# torch's fused AdamW runs vector code that its compiler contracts into fused multiply-adds, which
# native.adamw_step writes out: the same bits where torch runs its AVX2 or AVX-512 kernels (both checked,
# with ATEN_CPU_CAPABILITY); its scalar fallback rounds differently.
BIT_FOR_BIT = torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512")


@pytest.mark.parametrize("clip", [1.0, 0.0])
def test_the_native_step_matches_torchs_clipping_and_adamw(clip, monkeypatch):
    ours, theirs = _pair()
    taken = []
    real = native.adamw_step
    monkeypatch.setattr(native, "adamw_step", lambda *a, **k: taken.append(1) or real(*a, **k))
    for step in range(6):
        # Large gradients (clipped: the factor matters) and small ones (not clipped) in turn.
        _give_gradients([ours[0], theirs[0]], 0.5 if step % 2 else 1e-3, seed=step)
        clip_and_step(ours[1], clip)
        _reference(theirs[1], clip)
        # Unclipped (no clipping, or the first step's small gradients) the factor is 1: torch's own bits.
        _assert_same_state(ours, theirs, exact=BIT_FOR_BIT and (clip == 0 or step == 0))
    assert len(taken) == 6 * 2  # the native path ran: both groups, every step


def test_the_gradients_are_left_as_backward_left_them():
    ours, _ = _pair()
    _give_gradients([ours[0]], 0.5, seed=1)
    before = [p.grad.clone() for p in ours[0].parameters()]
    clip_and_step(ours[1], 1.0)
    assert all(torch.equal(p.grad, g) for p, g in zip(ours[0].parameters(), before, strict=True))


def test_a_graph_saved_before_the_step_refuses_a_backward_pass_after_it():
    (model, optimizer), _ = _pair()
    x = torch.randint(0, CONFIG.n_vocab, (2, 8))
    _, loss = model(x, x)
    _give_gradients([model], 0.5, seed=1)
    clip_and_step(optimizer, 1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


def test_a_parameter_without_a_gradient_is_skipped_and_then_a_step_behind():
    ours, theirs = _pair()
    skipped = (CONFIG.n_ctx, CONFIG.n_embd)  # the position embedding: no gradient in the first step
    _give_gradients([ours[0], theirs[0]], 0.5, seed=1, skip=(skipped,))
    clip_and_step(ours[1], 1.0)
    _reference(theirs[1], 1.0)
    assert [p for p in ours[0].parameters() if p.shape == skipped][0] not in ours[1].state
    for step in (2, 3):  # its bias correction now counts one step fewer than the others'
        _give_gradients([ours[0], theirs[0]], 0.5, seed=step)
        clip_and_step(ours[1], 1.0)
        _reference(theirs[1], 1.0)
    _assert_same_state(ours, theirs)
    steps = {p.shape == skipped: int(ours[1].state[p]["step"]) for p in ours[0].parameters()}
    assert steps == {True: 2, False: 3}


def test_either_path_continues_the_others_run():
    ours, theirs = _pair()
    _give_gradients([ours[0], theirs[0]], 0.5, seed=1)
    clip_and_step(ours[1], 1.0)
    _reference(theirs[1], 1.0)
    # Swap the optimizers' states: each continues from the other path's state dict.
    ours_state, theirs_state = ours[1].state_dict(), theirs[1].state_dict()
    ours[1].load_state_dict(theirs_state)
    theirs[1].load_state_dict(ours_state)
    _give_gradients([ours[0], theirs[0]], 0.5, seed=2)
    clip_and_step(ours[1], 1.0)
    _reference(theirs[1], 1.0)
    _assert_same_state(ours, theirs)


def test_a_non_finite_norm_spoils_the_step_as_torchs_does():
    ours, theirs = _pair()
    _give_gradients([ours[0], theirs[0]], 0.5, seed=1)
    for model in (ours[0], theirs[0]):
        next(model.parameters()).grad[0, 0] = math.inf
    clip_and_step(ours[1], 1.0)
    _reference(theirs[1], 1.0)
    _assert_same_state(ours, theirs)
    assert any(p.isnan().any() for p in ours[0].parameters())


@pytest.mark.parametrize("adamw", [{"amsgrad": True}, {"maximize": True}, {"lr": torch.tensor(1e-2)}])
def test_what_the_native_step_does_not_take_goes_to_torch(adamw, monkeypatch):
    ours, theirs = _pair(**adamw)
    monkeypatch.setattr(native, "adamw_step", lambda *a, **k: pytest.fail("the native step took it"))
    for step in range(3):
        _give_gradients([ours[0], theirs[0]], 0.5, seed=step)
        clip_and_step(ours[1], 1.0)
        _reference(theirs[1], 1.0)
    _assert_same_state(ours, theirs, exact=True)  # the same code: the same bits


def test_an_optimizer_with_step_hooks_goes_to_torch_which_runs_them(monkeypatch):
    (model, optimizer), _ = _pair()
    ran = []
    optimizer.register_step_post_hook(lambda *_: ran.append(1))
    monkeypatch.setattr(native, "adamw_step", lambda *a, **k: pytest.fail("the native step took it"))
    _give_gradients([model], 0.5, seed=1)
    clip_and_step(optimizer, 1.0)
    assert ran == [1]


def test_a_hook_around_every_optimizers_step_sends_it_to_torch(monkeypatch):
    (model, optimizer), _ = _pair()
    ran = []
    handle = register_optimizer_step_pre_hook(lambda *_: ran.append(1))
    try:
        monkeypatch.setattr(native, "adamw_step", lambda *a, **k: pytest.fail("the native step took it"))
        _give_gradients([model], 0.5, seed=1)
        clip_and_step(optimizer, 1.0)
    finally:
        handle.remove()
    assert ran == [1]


def test_a_bf16_parameter_goes_to_torch(monkeypatch):
    model = torch.nn.Linear(8, 4).to(torch.bfloat16)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    monkeypatch.setattr(native, "adamw_step", lambda *a, **k: pytest.fail("the native step took it"))
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    clip_and_step(optimizer, 1.0)
    assert all(int(s["step"]) == 1 for s in optimizer.state.values())


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_the_sum_of_squares_is_the_float64_sum_for_any_thread_count(threads):
    generator = torch.Generator().manual_seed(3)
    chunk = 65536
    sizes = [0, 5, 2 * chunk + 3, chunk, 0, 1000, chunk - 1, 0]
    tensors = [torch.randn(n, generator=generator) for n in sizes]
    expected = sum(float(t.double().square().sum()) for t in tensors)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        total = native.sum_of_squares(tensors)
    finally:
        torch.set_num_threads(previous)
    assert total == pytest.approx(expected, rel=1e-12)
    torch.set_num_threads(1)
    try:
        assert native.sum_of_squares(tensors) == total  # the same bits: chunks summed in a fixed order
    finally:
        torch.set_num_threads(previous)


def test_the_native_passes_decline_what_they_cannot_take():
    assert native.sum_of_squares([torch.ones(4, dtype=torch.float64)]) is None
    assert native.sum_of_squares([torch.ones(4, 4).t()]) is None
    p, g = torch.ones(4), torch.ones(5)
    before = p.clone()
    assert not native.adamw_step([p], [g], [torch.zeros(4)], [torch.zeros(4)], lr=1.0, betas=(0.9, 0.99),
                                 eps=1e-8, weight_decay=0.0, step=1, grad_scale=1.0)  # fmt: skip
    assert torch.equal(p, before)


def test_training_takes_the_native_step(monkeypatch):
    calls = []
    real = clipped_adamw._native_step
    monkeypatch.setattr(clipped_adamw, "_native_step", lambda *a: calls.append(real(*a)) or calls[-1])
    from modelcore.train import train

    tokens = torch.randint(0, CONFIG.n_vocab, (2_000,))
    train(CONFIG, tokens, None, TrainSettings(steps=2, batch_size=2, warmup=1, eval_interval=10**9,
                                              checkpoint_interval=10**9))  # fmt: skip
    assert calls == [True, True]
