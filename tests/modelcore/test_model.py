import copy
import math
import pickle
import threading

import pytest
import torch

from modelcore import kernels, native, training_ops
from modelcore import model as model_module
from modelcore.model import GPT, GPTConfig, Linear, parameter_count
from modelcore.training_ops import CausalAttention, Gelu
from tests.kernel_calls import count_kernel_calls

GPT2_124M = {"n_vocab": 50257, "n_ctx": 1024, "n_embd": 768, "n_head": 12, "n_layer": 12}


def test_parameter_count_of_124m_is_124_439_808():
    assert parameter_count(GPTConfig.from_hparams(GPT2_124M)) == 124_439_808


def test_parameter_count_matches_the_built_model_with_tied_embeddings(config, model):
    assert parameter_count(config) == sum(p.numel() for p in model.parameters())
    assert not any("head" in name for name, _ in model.named_parameters())  # the output layer is wte


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"n_head": 5}, "divisible by n_head"),
        ({"n_layer": 0}, "n_layer must be a positive integer"),
        ({"n_vocab": -3}, "n_vocab must be a positive integer"),
        ({"n_ctx": 2.5}, "n_ctx must be a positive integer"),
        ({"dropout": 1.0}, "dropout"),
    ],
)
def test_config_validation_names_the_problem(change, message):
    with pytest.raises(ValueError, match=message):
        GPTConfig(**{**GPT2_124M, **change}).validate()


def test_from_hparams_refuses_unknown_and_missing_keys():
    with pytest.raises(ValueError, match="unknown hparams"):
        GPTConfig.from_hparams({**GPT2_124M, "n_embed": 768})
    with pytest.raises(ValueError, match="missing hparams"):
        GPTConfig.from_hparams({k: v for k, v in GPT2_124M.items() if k != "n_ctx"})


def test_residual_projections_start_scaled_by_one_over_sqrt_two_n_layer():
    torch.manual_seed(0)
    model = GPT(GPTConfig(n_vocab=64, n_ctx=16, n_embd=128, n_head=4, n_layer=8))
    std = {name: p.std().item() for name, p in model.named_parameters()}
    assert std["h.3.mlp.c_fc.weight"] == pytest.approx(0.02, rel=0.05)
    assert std["h.3.mlp.c_proj.weight"] == pytest.approx(0.02 / math.sqrt(16), rel=0.05)
    assert std["h.3.attn.c_proj.weight"] == pytest.approx(0.02 / math.sqrt(16), rel=0.05)


def test_attention_is_causal(model, config):
    idx = torch.randint(0, config.n_vocab, (2, 20))
    changed = idx.clone()
    changed[:, 10:] = (changed[:, 10:] + 1) % config.n_vocab
    with torch.no_grad():
        a, b = model(idx)[0], model(changed)[0]
    torch.testing.assert_close(a[:, :10], b[:, :10])  # the past does not see the future
    assert not torch.allclose(a[:, 10:], b[:, 10:])


def test_decoding_with_the_kv_cache_matches_the_full_forward(model, config):
    idx = torch.randint(0, config.n_vocab, (3, 40))
    with torch.no_grad():
        full = model(idx)[0]  # [3, 40, V]
        cache = model.new_kv_cache(3)
        steps = [model.decode(idx[:, :16], cache, 0)]  # a prompt
        steps += [model.decode(idx[:, t : t + 1], cache, t) for t in range(16, 30)]  # one token at a time
        steps.append(model.decode(idx[:, 30:40], cache, 30))  # a chunk after a prefix (masked, not is_causal)
    expected = full[:, [15, *range(16, 30), 39]]  # [3, 16, V]
    torch.testing.assert_close(torch.stack(steps, dim=1), expected, atol=1e-5, rtol=1e-5)


def test_sequences_longer_than_n_ctx_are_refused(model, config):
    with pytest.raises(ValueError, match="exceeds n_ctx"):
        model(torch.zeros(1, config.n_ctx + 1, dtype=torch.long))


def test_loss_falls_when_overfitting_one_batch(config):
    torch.manual_seed(0)
    model = GPT(config).train()
    x = torch.randint(0, config.n_vocab, (4, 32))
    y = torch.roll(x, -1, dims=1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        _, loss = model(x, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(math.log(config.n_vocab), rel=0.05)  # a fresh model is near uniform
    assert losses[-1] < 0.3 * losses[0]


def twins(config, ignored: int):
    """Two models with the same weights, and a batch whose first `ignored` targets of each row are -1."""
    torch.manual_seed(0)
    a, b = GPT(config), GPT(config)
    b.load_state_dict(a.state_dict())
    x = torch.randint(0, config.n_vocab, (3, 16))
    y = torch.randint(0, config.n_vocab, (3, 16))
    y[:, :ignored] = -1
    return a, b, x, y


@pytest.mark.parametrize("ignored", [5, 0], ids=["ignored-targets", "none-ignored"])
def test_the_fused_loss_and_its_gradients_equal_cross_entropy_with_ignored_targets(config, ignored):
    a, b, x, y = twins(config, ignored)  # ignored: e.g. positions scored by an earlier window
    _, fused = a(x, y)
    logits, _ = b(x)
    reference = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=-1)
    (fused * 0.25).backward()  # a scaled loss, as gradient accumulation gives: the scale reaches both products
    (reference * 0.25).backward()
    torch.testing.assert_close(fused, reference)
    for (name, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, msg=name)


@pytest.mark.parametrize("bf16", [False, True], ids=["fp32", "bf16"])
def test_the_output_layer_s_weight_gradient_in_vocabulary_blocks_equals_it_in_one_piece(config, bf16, monkeypatch):
    blocks = 7  # rows a block: the vocabulary in many blocks and a shorter last one
    assert config.n_vocab > 3 * blocks and config.n_vocab % blocks
    a, b, x, y = twins(config, ignored=2)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)
    with autocast:
        b(x, y)[1].backward()  # the tied gradient's path, one block (the vocabulary is under VOCAB_BLOCK_ROWS)
        h = b.hidden(x).detach().flatten(0, 1)
        weight = b.wte.weight.detach().clone().requires_grad_()
        training_ops.LinearCrossEntropy.apply(h, weight, y.flatten()).backward()  # untied: autograd's gradient
    monkeypatch.setattr(training_ops, "VOCAB_BLOCK_ROWS", blocks)
    with autocast:
        a(x, y)[1].backward()
        blocked = weight.detach().clone().requires_grad_()
        training_ops.LinearCrossEntropy.apply(h, blocked, y.flatten()).backward()
    torch.testing.assert_close(a.wte.weight.grad, b.wte.weight.grad, rtol=0, atol=0)
    torch.testing.assert_close(blocked.grad, weight.grad, rtol=0, atol=0)


def test_under_cpu_autocast_the_fused_loss_multiplies_in_bf16_and_normalises_in_fp32(config):
    # The reference: the unfused loss as autocast runs it, the product in bf16 and cross-entropy in fp32.
    a, b, x, y = twins(config, ignored=4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, fused = a(x, y)
        logits, _ = b(x)
        reference = torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), y.flatten(), ignore_index=-1)
    assert logits.dtype == torch.bfloat16 and fused.dtype == torch.float32
    (fused * 0.25).backward()
    (reference * 0.25).backward()
    torch.testing.assert_close(fused, reference, rtol=1e-3, atol=1e-3)
    for (name, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
        assert p.grad.dtype == torch.float32, name
        # bf16 products round each gradient to about 3 significant digits, differently in the two orders.
        torch.testing.assert_close(p.grad, q.grad, rtol=0.05, atol=0.02 * q.grad.abs().max().item(), msg=name)


def test_bf16_linear_computes_what_autocast_computes_and_reuses_its_kept_memory():
    torch.manual_seed(0)
    layer, reference = Linear(24, 40), torch.nn.Linear(24, 40)
    reference.load_state_dict(layer.state_dict())

    def run(module, inputs, steps):
        xs = [x.clone().requires_grad_() for x in inputs]
        for _ in range(steps):  # without zero_grad: micro-batches accumulating
            with torch.autocast("cpu", dtype=torch.bfloat16):
                outputs = [module(x) for x in xs]
            sum((out.float() * torch.arange(out.numel()).view(out.shape).sin()).sum() for out in outputs).backward()
        result = {"outputs": outputs, "inputs": [x.grad for x in xs], "weight": module.weight.grad,
                  "bias": module.bias.grad}  # fmt: skip
        module.zero_grad(set_to_none=True)
        return result

    def step(*inputs, steps=1):
        ours, autocast_s = run(layer, inputs, steps), run(reference, inputs, steps)
        for got, expected in zip(ours["outputs"] + ours["inputs"], autocast_s["outputs"] + autocast_s["inputs"],
                                 strict=True):  # fmt: skip
            assert got.dtype == expected.dtype and torch.equal(got, expected)
        # The weight's gradient rounded to bf16 from sums in another order: a bf16 step apart at most.
        torch.testing.assert_close(ours["weight"], autocast_s["weight"], rtol=2**-7, atol=1e-6)
        torch.testing.assert_close(ours["bias"], autocast_s["bias"], rtol=2**-7, atol=1e-6)
        return ours["weight"].data_ptr()

    x = torch.randn(3, 5, 24)
    assert step(x) == step(x * 2)  # the second step's gradient in the first one's memory
    step(x, steps=2)  # the second backward finds .grad holding the kept memory: fresh memory, added
    step(x, x * 3)  # two forwards before one backward: the second one on fresh memory


def unfused_loss(model, x, y):
    logits, _ = model(x)  # no targets: nn.Embedding's own gradient and autograd's sum of the two
    return torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), y.flatten(), ignore_index=-1)


@pytest.mark.parametrize("bf16", [False, True], ids=["fp32", "bf16"])
def test_the_tied_weight_s_gradient_reuses_kept_memory_and_equals_autograd_s_sum(config, bf16):
    a, b, x, y = twins(config, ignored=3)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)
    kept = []
    for step in range(3):  # as train() runs them: zero_grad(set_to_none=True) between steps
        x, y = x.roll(step, 1), y.roll(step, 1)
        with autocast:
            a(x, y)[1].backward()
            unfused_loss(b, x, y).backward()
        kept.append(a.wte.weight.grad.data_ptr())
        for (name, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
            # bf16: the two orders of products round each gradient to about 3 significant digits differently,
            # and a bias's gradient sums many of them.
            close = {"rtol": 0.05, "atol": 0.05 * q.grad.abs().max().item()} if bf16 else {}
            torch.testing.assert_close(p.grad, q.grad, **close, msg=name)
        with torch.no_grad():  # an optimiser's step: the weights change between steps
            for p, q in zip(a.parameters(), b.parameters(), strict=True):
                p -= 0.1 * q.grad
                q -= 0.1 * q.grad
        a.zero_grad(set_to_none=True)
        b.zero_grad(set_to_none=True)
    assert kept[0] == kept[1] == kept[2]  # no fresh [V, C] gradient a step


@pytest.mark.parametrize("bf16", [False, True], ids=["fp32", "bf16"])
def test_kept_memory_serves_accumulating_micro_batches_and_two_losses_in_one_backward(config, bf16):
    a, b, x, y = twins(config, ignored=0)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)

    def assert_same_gradients():
        for (name, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
            close = {"rtol": 0.05, "atol": 0.05 * q.grad.abs().max().item()} if bf16 else {}
            torch.testing.assert_close(p.grad, q.grad, **close, msg=name)

    # Micro-batches accumulating: the second backward finds .grad holding the tied gradient's kept memory.
    for rows in (slice(0, 2), slice(1, 3)):
        with autocast:
            a(x[rows], y[rows])[1].backward()
            unfused_loss(b, x[rows], y[rows]).backward()
    assert_same_gradients()
    a.zero_grad(set_to_none=True)
    b.zero_grad(set_to_none=True)
    # Two forwards before one backward: the second must not write over the first's logits and probabilities.
    with autocast:
        (a(x[:2], y[:2])[1] + a(x[1:], y[1:])[1]).backward()
        (unfused_loss(b, x[:2], y[:2]) + unfused_loss(b, x[1:], y[1:])).backward()
    assert_same_gradients()
    # A forward whose graph is dropped without a backward does not keep the memory from the next one.
    with autocast:
        a(x, y)
        logits_before = a.output_memory._kept["logits"].data_ptr()
        a(x, y)[1].backward()
    assert a.output_memory._kept["logits"].data_ptr() == logits_before
    if bf16:  # the attention's probabilities (native attention) were kept too
        assert all("probs" in block.attn.memory._kept for block in a.h)


@pytest.mark.parametrize("vocab", [301, 8192], ids=["vocab-not-a-multiple-of-8", "mini-vocab"])
def test_the_native_bf16_cross_entropy_gives_torch_s_losses_and_rounded_gradient(vocab):
    assert native.unavailable_reason() is None  # the native pass must be the one tested here
    torch.manual_seed(0)
    logits = (torch.randn(40, vocab) * 4).bfloat16()
    targets = torch.randint(0, vocab, (40,))
    targets[[3, 17]] = -1
    reference = torch.nn.functional.cross_entropy(logits.float(), targets, ignore_index=-1, reduction="none")
    probs = torch.softmax(logits.float(), -1)
    kept = targets >= 0
    probs[kept.nonzero().squeeze(1), targets[kept]] -= 1.0
    gradient = logits.clone()
    losses = native.cross_entropy_bf16(gradient, targets)
    torch.testing.assert_close(losses, reference, rtol=1e-5, atol=1e-5)
    assert losses[[3, 17]].tolist() == [0.0, 0.0]
    # The gradient as torch's fp32 rounded to bf16: equal but where e^x's last bit moves a value across a
    # rounding boundary, and then by one bf16 step.
    expected = probs.bfloat16()
    differ = gradient != expected
    assert differ.float().mean() < 1e-3
    steps = (gradient[differ].float() - expected[differ].float()).abs() / expected[differ].float().abs()
    assert bool((steps <= 2**-7).all())
    for declined in (logits.float(), logits.t().contiguous().t(), logits[:, :-1]):
        before = declined.clone()
        assert native.cross_entropy_bf16(declined, targets) is None and torch.equal(declined, before)
    # A target past the vocabulary: nothing read or written out of bounds, torch's path reports it.
    past = targets.clone()
    past[-1] = vocab
    before = logits.clone()
    assert native.cross_entropy_bf16(logits, past) is None and torch.equal(logits, before)
    # A logit far below its row's largest (or -inf) weighs nothing, as in torch.
    far = logits[:2].clone()
    far[:, 5] = float("-inf")
    far[:, 6] = far[:, 7] - 200
    native.cross_entropy_bf16(far, targets[:2].clamp(min=8))
    assert far[:, 5:7].eq(0).all()


def test_under_cpu_autocast_the_fused_loss_takes_the_native_pass_and_matches_torch_s(config, monkeypatch):
    a, b, x, y = twins(config, ignored=4)
    calls = []
    native_pass = native.cross_entropy_bf16
    monkeypatch.setattr(native, "cross_entropy_bf16", lambda *args: calls.append(1) or native_pass(*args))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, fast = a(x, y)
    fast.backward()
    assert calls == [1]
    monkeypatch.setattr(native, "cross_entropy_bf16", lambda *args: None)  # torch's passes
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, reference = b(x, y)
    reference.backward()
    torch.testing.assert_close(fast, reference, rtol=1e-5, atol=1e-5)
    for (name, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=0.02, atol=0.01 * q.grad.abs().max().item(), msg=name)
    monkeypatch.setattr(native, "cross_entropy_bf16", native_pass)
    y[0, -1] = config.n_vocab  # a last target past the vocabulary (never an input): refused as in fp32
    with torch.autocast("cpu", dtype=torch.bfloat16), pytest.raises((IndexError, RuntimeError)):
        a(x, y)


def within_a_bf16_step(got: torch.Tensor, expected: torch.Tensor, share: float = 1e-3) -> None:
    """got as expected (both bf16) but for a few values one bf16 step apart: where fp32's last bit, in an order of
    summation or e^x, moves a value across a rounding boundary."""
    differ = got != expected
    assert differ.float().mean() <= share
    steps = (got[differ].float() - expected[differ].float()).abs() / expected[differ].float().abs()
    assert bool((steps <= 2**-7 + 1e-6).all())


@pytest.mark.parametrize(("rows", "cols", "offset"), [(1, 1, 0), (13, 13, 0), (64, 64, 0), (7, 20, 13), (16, 40, 8)],
                         ids=["one-column", "rows-not-a-multiple-of-8", "mini-width", "last-block", "middle-block"])
def test_the_native_causal_softmax_passes_give_torch_s_fp32_rounded_to_bf16(rows, cols, offset):
    assert native.unavailable_reason() is None  # the native passes must be the ones tested here
    torch.manual_seed(0)
    scores = (torch.randn(2, 3, rows, cols) * 6).bfloat16()
    if offset + rows > 1:
        scores[0, 0, -1, 0] = float("-inf")  # weighs nothing, as in torch
    probs = scores.clone()
    assert native.causal_softmax_bf16(probs, 0.125, offset)
    expected = training_ops._causal_softmax(scores, 0.125, offset)
    within_a_bf16_step(probs, expected)
    masked = torch.ones(rows, cols, dtype=torch.bool).triu(1 + offset)
    assert probs[..., masked].eq(0).all() and (offset + rows == 1 or probs[0, 0, -1, 0] == 0)
    grad = torch.randn(2, 3, rows, cols).bfloat16()
    grad_scores = grad.clone()
    assert native.causal_softmax_backward_bf16(probs, grad_scores, 0.125, offset)
    within_a_bf16_step(grad_scores, training_ops._causal_softmax_backward(probs, grad, 0.125), share=5e-3)
    assert grad_scores[..., masked].eq(0).all()
    for declined in (scores.float(), scores.transpose(-1, -2)):
        if declined.is_contiguous() and declined.dtype == torch.bfloat16:
            continue  # a [1, 1] transpose is the same tensor
        before = declined.clone()
        assert not native.causal_softmax_bf16(declined, 0.125, offset) and torch.equal(declined, before)
        assert not native.causal_softmax_backward_bf16(probs, declined, 0.125, offset)
        assert torch.equal(declined, before)
    assert not native.causal_softmax_bf16(probs, 0.0, offset)
    assert not native.causal_softmax_bf16(probs, 0.125, cols - rows + 1)  # rows past the last key


def _cpu_runs_fused_attention() -> bool:
    """What decode_step.c's fused attention passes are built for: AVX512-BF16 units, and no AMX."""
    with open("/proc/cpuinfo") as cpuinfo:
        flags = next((line.split() for line in cpuinfo if line.startswith("flags")), [])
    return "avx512_bf16" in flags and "amx_bf16" not in flags


@pytest.mark.parametrize(("T", "hd", "offset", "rows"),
                         [(40, 16, 0, 1), (40, 16, 0, 13), (40, 16, 0, 40), (40, 16, 13, 27), (40, 16, 8, 16),
                          (70, 6, 20, 50), (33, 64, 16, 17)],
                         ids=["one-row", "rows-not-a-multiple-of-8", "one-block", "last-block", "middle-block",
                              "narrow-heads", "gpt2-heads"])  # fmt: skip
def test_the_fused_attention_passes_give_the_passes_on_fp32_products(T, hd, offset, rows):
    assert native.unavailable_reason() is None
    torch.manual_seed(0)
    q, k, v, grad_y = ((torch.randn(3, T, hd) * 2).bfloat16() for _ in range(4))
    cols, scale = offset + rows, hd**-0.5
    probs = torch.full((3, rows, cols), 7.0, dtype=torch.bfloat16)
    if not _cpu_runs_fused_attention():
        assert not native.causal_attention_probs_bf16(q, k, probs, scale, offset)
        assert probs.eq(7).all()  # untouched: the caller takes torch's products
        return
    assert native.causal_attention_probs_bf16(q, k, probs, scale, offset)
    scores = q[:, offset:cols].float() @ k[:, :cols].float().transpose(1, 2)  # fp32 products of the bf16 values
    within_a_bf16_step(probs, training_ops._causal_softmax(scores, scale, offset).bfloat16())
    masked = torch.ones(rows, cols, dtype=torch.bool).triu(1 + offset)
    assert probs[:, masked].eq(0).all()
    grad_scores = torch.full_like(probs, 7.0)
    assert native.causal_attention_scores_grad_bf16(grad_y, v, probs, grad_scores, scale, offset)
    grad_probs = grad_y[:, offset:cols].float() @ v[:, :cols].float().transpose(1, 2)
    expected = training_ops._causal_softmax_backward(probs, grad_probs, scale).bfloat16()
    # Where dP - the row's sum nearly cancels, fp32's order of summation moves the difference by more than a step.
    close = (grad_scores.float() - expected.float()).abs() <= 2**-7 * expected.float().abs() + 1e-3 * scale
    assert close.all() and grad_scores[:, masked].eq(0).all()
    odd = q[..., :-1].contiguous(), k[..., :-1].contiguous()  # an odd head size: no whole pairs to multiply
    for declined in ((q.float(), k, probs), (q, k.transpose(1, 2), probs), (*odd, probs), (q, k, probs.float()),
                     (q, k, probs[:, :, :-1].contiguous()), (q, k[:, :-1].contiguous(), probs)):
        before = declined[2].clone()
        assert not native.causal_attention_probs_bf16(*declined, scale, offset)
        assert torch.equal(declined[2], before)
    assert not native.causal_attention_probs_bf16(q, k, probs, 0.0, offset)
    assert not native.causal_attention_scores_grad_bf16(grad_y, v, probs, grad_scores.float(), scale, offset)


@pytest.mark.parametrize(("T", "hd", "block_rows"),
                         [(40, 16, 20), (40, 16, 16), (37, 6, 19), (70, 20, 256), (33, 64, 8)],
                         ids=["two-halves", "blocks-of-16", "odd-rows-and-blocks", "heads-of-20", "gpt2-heads"])
def test_the_native_column_products_sum_each_key_s_column_over_every_block(T, hd, block_rows, monkeypatch):
    assert native.unavailable_reason() is None
    monkeypatch.setattr(training_ops, "QUERY_BLOCK_ROWS", block_rows)
    torch.manual_seed(0)
    size = training_ops._query_block_size(T)  # block_rows, or two halves where T is shorter
    causal = torch.randn(3, T, T).tril()  # a[m][i][j], 0 past the diagonal
    flat = torch.cat([causal[:, start:end, :end].reshape(-1) for start, end in training_ops._query_blocks(T)])
    flat = flat.bfloat16()
    b = torch.randn(3, T, hd).bfloat16()
    out = torch.full((3, T, hd), 7.0, dtype=torch.bfloat16)
    if not _cpu_runs_fused_attention():
        assert not native.causal_attention_column_products_bf16(flat, b, out, size) and out.eq(7).all()
        return
    assert native.causal_attention_column_products_bf16(flat, b, out, size)
    a = torch.zeros(3, T, T, dtype=torch.float64)  # the bf16 values, back in place
    for (start, end), block in zip(training_ops._query_blocks(T), training_ops._blocks(flat, 3, T), strict=True):
        a[:, start:end, :end] = block.double()
    expected = (a.transpose(1, 2) @ b.double()).bfloat16()  # every row's part, summed once and rounded once
    within_a_bf16_step(out, expected, share=0.02)
    for declined in ((flat.float(), b, out), (flat[:-1], b, out), (flat, b.transpose(1, 2), out),
                     (flat, b, out.float()), (flat, b[:, :-1].contiguous(), out)):
        assert not native.causal_attention_column_products_bf16(*declined, size)
    assert not native.causal_attention_column_products_bf16(flat, b, out, size + 1)  # another layout of blocks


def test_a_copied_or_pickled_model_gets_kept_memory_of_its_own_and_empty(config):
    model = GPT(config)
    x = torch.randint(0, config.n_vocab, (2, 16))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model(x, x)[1].backward()
    assert model.h[0].attn.memory._kept  # the probabilities, kept for the next step
    for copied in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        memory = copied.h[0].attn.memory
        assert memory is not model.h[0].attn.memory and not memory._kept and memory.claim(copied)


def test_attention_trained_in_two_threads_at_once_keeps_each_thread_s_gradients():
    # The scores' gradient sits in memory that every layer's backward pass shares: one pass at a time holds it,
    # another thread's pass meanwhile takes fresh memory.
    torch.manual_seed(0)
    inputs = [[torch.randn(2, 3, 40, 16).bfloat16() for _ in range(4)] for _ in range(2)]

    def gradients(q, k, v, grad_y):
        q, k, v = (t.clone().requires_grad_() for t in (q, k, v))
        CausalAttention.apply(q, k, v).backward(grad_y)
        return q.grad, k.grad, v.grad

    expected = [gradients(*x) for x in inputs]
    got: list[list] = [[], []]
    threads = [threading.Thread(target=lambda i=i: got[i].extend(gradients(*inputs[i]) for _ in range(30)))
               for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for i in range(2):
        assert len(got[i]) == 30
        assert all(torch.equal(a, b) for grads in got[i] for a, b in zip(grads, expected[i], strict=True))


def test_the_native_bf16_gelu_passes_give_torch_s_values():
    assert native.unavailable_reason() is None
    torch.manual_seed(0)
    u = (torch.randn(37, 303) * 3).bfloat16()  # an odd count: a tail of 11 after whole turns of 32 values too
    grad = torch.randn(37, 303).bfloat16()
    exact_u = u.double().requires_grad_()
    exact = torch.nn.functional.gelu(exact_u, approximate="tanh")
    exact.backward(grad.double())
    got, expected = native.gelu(u), torch.nn.functional.gelu(u, approximate="tanh")
    got_grad = native.gelu_backward(u, grad)
    expected_grad = torch.ops.aten.gelu_backward(grad, u, approximate="tanh")
    body = u.float() > -3  # below, values under 1e-5 that torch's tanh form and ours round differently
    within_a_bf16_step(got[body], expected[body], share=5e-3)
    within_a_bf16_step(got_grad[body], expected_grad[body], share=5e-3)
    # In the tail as close to the exact GELU and its gradient as torch's (bf16's rounding, and no more).
    for ours, torch_s, truth in ((got, expected, exact.detach()), (got_grad, expected_grad, exact_u.grad)):
        error = (ours[~body].double() - truth[~body]).abs().max()
        assert error <= (torch_s[~body].double() - truth[~body]).abs().max() * 1.01 + 1e-9
    assert native.gelu(u.double()) is None and native.gelu(u.t()) is None
    for declined_u, declined_grad in ((u.double(), grad.double()), (u.t(), grad.t()), (u, grad.float())):
        assert native.gelu_backward(declined_u, declined_grad) is None


def test_the_native_fp32_gelu_passes_are_as_close_to_the_exact_gelu_as_fp32_allows():
    torch.manual_seed(0)
    u, grad = torch.randn(37, 303) * 3, torch.randn(37, 303)  # a tail of 11 after whole turns of 32 values
    exact_u = u.double().requires_grad_()
    exact = torch.nn.functional.gelu(exact_u, approximate="tanh")
    exact.backward(grad.double())
    got, got_grad = native.gelu(u), native.gelu_backward(u, grad)
    assert got.dtype == got_grad.dtype == torch.float32
    # Within a few ulps of the float64 GELU, where torch's 1 + tanh loses digits in the negative tail.
    for ours, truth, (absolute, relative) in ((got, exact.detach(), (1e-6, 5e-6)), (got_grad, exact_u.grad, (2e-6, 2e-5))):
        error = (ours.double() - truth).abs()
        assert error.max() <= absolute
        assert (error / truth.abs())[truth.abs() > 1e-3].max() <= relative


def test_training_under_bf16_autocast_takes_the_native_gelu(config, monkeypatch):
    a, b, x, y = twins(config, ignored=0)
    calls = []
    monkeypatch.setattr(Gelu, "apply", lambda *args, apply=Gelu.apply: calls.append(1) or apply(*args))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        a(x, y)[1].backward()
    assert len(calls) == config.n_layer
    monkeypatch.setattr(native, "gelu", lambda u: None)  # torch's GELU inside the same function
    monkeypatch.setattr(native, "gelu_backward", lambda u, grad: None)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        b(x, y)[1].backward()
    for (name, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=0.05, atol=0.03 * q.grad.abs().max().item(), msg=name)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):  # sampling: torch's
        a(x)
    assert len(calls) == 2 * config.n_layer


def test_training_in_fp32_takes_the_native_gelu_and_torch_s_gradients_within_rounding(config, monkeypatch):
    a, b, x, y = twins(config, ignored=0)
    calls = []
    monkeypatch.setattr(Gelu, "apply", lambda *args, apply=Gelu.apply: calls.append(1) or apply(*args))
    a(x, y)[1].backward()
    assert len(calls) == config.n_layer
    monkeypatch.setattr(native, "gelu", lambda u: None)  # torch's GELU inside the same function
    monkeypatch.setattr(native, "gelu_backward", lambda u, grad: None)
    b(x, y)[1].backward()
    for (name, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-5 * q.grad.abs().max().item(), msg=name)
    with torch.no_grad():  # sampling: torch's
        a(x)
    assert len(calls) == 2 * config.n_layer


@pytest.mark.parametrize("branch", [True, False], ids=["stream-plus-branch", "stream"])
@pytest.mark.parametrize("width", [320, 37], ids=["mini-width", "width-not-a-multiple-of-8"])
def test_the_native_residual_norm_computes_torch_s_add_layer_norm_and_cast_and_their_gradients(branch, width):
    assert native.unavailable_reason() is None
    torch.manual_seed(0)
    x = torch.randn(2, 19, width) * 3 + 1
    side = torch.randn(2, 19, width).bfloat16() if branch else None
    weight, bias = torch.randn(width), torch.randn(width)
    grad_out, grad_stream = torch.randn(2, 19, width).bfloat16(), torch.randn(2, 19, width)

    def run(norm):  # the stream, the bf16 norm and the gradients of x, weight, bias (and the branch)
        leaves = [t.clone().requires_grad_() for t in (x, weight, bias, *([side] if branch else []))]
        stream, out = norm(*leaves)
        outputs, grads = ([out, stream], [grad_out, grad_stream]) if branch else ([out], [grad_out])
        torch.autograd.backward(outputs, grads)
        return stream.detach(), out.detach(), [t.grad for t in leaves]

    def torch_s(x, weight, bias, side=None):  # as autocast runs it: add and LayerNorm in fp32, the linear's cast
        stream = x + side if branch else x
        return stream, torch.nn.functional.layer_norm(stream, (width,), weight, bias, 1e-5).to(torch.bfloat16)

    def ours(x, weight, bias, side=None):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = training_ops.ResidualNorm.apply(x, side, weight, bias, 1e-5)
        return got if branch else (x, got)

    (expected_stream, expected, expected_grads), (stream, out, grads) = run(torch_s), run(ours)
    assert stream.dtype == torch.float32 and torch.equal(stream, expected_stream)
    assert out.dtype == torch.bfloat16
    within_a_bf16_step(out, expected)
    for name, got, wanted in zip(("x", "weight", "bias", "branch"), grads, expected_grads, strict=False):
        assert got.dtype == wanted.dtype, name
        torch.testing.assert_close(got, wanted, rtol=1e-4, atol=1e-4 * wanted.abs().max().item(), msg=name)
    if branch:  # the branch's gradient is the stream's, rounded to bf16 as autocast's add casts it
        assert torch.equal(grads[3], grads[0].to(torch.bfloat16))
    for declined in (x.double(), x.transpose(0, 1)):
        assert native.layer_norm_bf16(declined, weight, bias, 1e-5) is None
    assert native.layer_norm_bf16(x, weight[:-1], bias[:-1], 1e-5) is None
    assert native.layer_norm_bf16(x, weight, bias, 1e-5, torch.randn(2, 19, width)) is None  # an fp32 branch


def test_training_under_bf16_autocast_takes_the_native_residual_norm(config, monkeypatch):
    a, b, x, y = twins(config, ignored=0)
    calls = []
    apply = training_ops.ResidualNorm.apply
    monkeypatch.setattr(training_ops.ResidualNorm, "apply", lambda *args: calls.append(1) or apply(*args))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        a(x, y)[1].backward()
    assert len(calls) == 2 * config.n_layer
    monkeypatch.setattr(model_module, "runs_native_norm", lambda *args: False)  # torch's add, norm and casts
    with torch.autocast("cpu", dtype=torch.bfloat16):
        b(x, y)[1].backward()
    for (name, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=0.05, atol=0.03 * q.grad.abs().max().item(), msg=name)
    monkeypatch.undo()
    monkeypatch.setattr(training_ops.ResidualNorm, "apply", lambda *args: calls.append(1) or apply(*args))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):  # sampling: torch's
        a(x)
    a(x, y)[1].backward()  # fp32
    assert len(calls) == 2 * config.n_layer


def _fp32_attention_and_grads(q, k, v, grad_y):
    """The reference: flash attention in fp32 on the same bf16 inputs."""
    q, k, v = (t.detach().float().requires_grad_() for t in (q, k, v))
    y = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    y.backward(grad_y.float())
    return y, q.grad, k.grad, v.grad


@pytest.mark.parametrize(("passes", "block_rows"),
                         [("fused", 256), ("fused", 16), ("native", 256), ("native", 16), ("torch", 16)],
                         ids=["fused-two-halves", "fused-blocks-of-16", "native-two-halves", "native-blocks-of-16",
                              "torch-passes"])  # fmt: skip
def test_bf16_training_attention_matches_flash_attention_in_fp32(passes, block_rows, monkeypatch):
    monkeypatch.setattr(training_ops, "QUERY_BLOCK_ROWS", block_rows)  # T = 40: 20 + 20, or 16 + 16 + 8
    if passes != "fused":  # torch's products, and the native passes or torch's between them
        monkeypatch.setattr(native, "causal_attention_probs_bf16", lambda *args: False)
        monkeypatch.setattr(native, "causal_attention_scores_grad_bf16", lambda *args: False)
    if passes == "torch":
        monkeypatch.setattr(native, "causal_softmax_bf16", lambda *args: False)
        monkeypatch.setattr(native, "causal_softmax_backward_bf16", lambda *args: False)
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 40, 16).bfloat16().requires_grad_() for _ in range(3))
    grad_y = torch.randn(2, 3, 40, 16).bfloat16()
    y = CausalAttention.apply(q, k, v)
    y.backward(grad_y)
    expected = _fp32_attention_and_grads(q, k, v, grad_y)
    # bf16 scores, probabilities and products: each a relative 2^-8 per rounding, a few of them in a chain.
    for name, got, want in zip(("y", "q", "k", "v"), (y, q.grad, k.grad, v.grad), expected, strict=True):
        assert got.dtype == torch.bfloat16, name
        torch.testing.assert_close(got.float(), want, rtol=0.03, atol=0.03 * want.abs().max().item(), msg=name)


def test_training_under_bf16_autocast_takes_the_native_attention_and_learns_as_flash_attention_does(
        config, monkeypatch):
    a, b, x, y = twins(config, ignored=0)
    calls = []
    monkeypatch.setattr(CausalAttention, "apply", lambda *args, apply=CausalAttention.apply: calls.append(1)
                        or apply(*args))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, fast = a(x, y)
    fast.backward()
    assert len(calls) == config.n_layer
    monkeypatch.setattr(training_ops, "SCORES_BYTES_MAX", 0)  # flash attention, as beyond the bound
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, reference = b(x, y)
    reference.backward()
    assert len(calls) == config.n_layer
    torch.testing.assert_close(fast, reference, rtol=0.01, atol=0.01)
    for (name, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=0.05, atol=0.03 * q.grad.abs().max().item(), msg=name)
    # Not in fp32, nor without a gradient (sampling), nor with dropout.
    a.zero_grad()
    a(x, y)[1].backward()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        a(x)
    dropped = GPT(GPTConfig(**{**config.to_hparams(), "dropout": 0.1}))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        dropped(x, y)
    assert len(calls) == config.n_layer


@pytest.mark.parametrize("batch", [1, 3])
def test_bf16_training_takes_the_fused_attention_passes_at_any_batch(config, batch, monkeypatch):
    # At batch 1 the heads' q, k and v are views of the qkv projection with rows 3C apart, which the native
    # passes decline: CausalAttention hands them contiguous copies.
    taken = []

    def recording(run):
        def call(*args):
            taken.append(run(*args))
            return taken[-1]
        return call

    for name in ("causal_attention_probs_bf16", "causal_attention_scores_grad_bf16",
                 "causal_attention_column_products_bf16"):
        monkeypatch.setattr(native, name, recording(getattr(native, name)))
    torch.manual_seed(0)
    model = GPT(config)
    x = torch.randint(0, config.n_vocab, (batch, 16))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, loss = model(x, x)
    loss.backward()
    assert len(taken) > 3 * config.n_layer and set(taken) == {_cpu_runs_fused_attention()}


@pytest.fixture
def kernel_calls(monkeypatch):
    return count_kernel_calls(monkeypatch)


@pytest.mark.parametrize("layout", sorted(kernels.LAYOUTS))
@pytest.mark.parametrize("shape", [(1, 1, 32), (3, 1, 32), (2, 7, 32), (32,)])
def test_every_inference_layout_agrees_with_f_linear(layout, shape, kernel_calls):
    torch.manual_seed(0)
    layer = Linear(32, 96)
    x = torch.randn(*shape)
    with torch.no_grad():
        kernel = kernels.prepare(layout, layer.weight, batch_size=3)  # rows need not match the batch size
        with kernels.KernelSet(layout, {layer: kernel}):
            fast = layer(x)
        strided = x.transpose(0, 1) if x.dim() == 3 else x  # a non-contiguous view where the shape allows
        no_bias = kernels.linear(strided, layer.weight, None, kernel)
    assert kernel_calls[layout] == 2
    torch.testing.assert_close(fast, torch.nn.functional.linear(x, layer.weight, layer.bias))
    torch.testing.assert_close(no_bias, torch.nn.functional.linear(strided, layer.weight))
    assert fast.grad_fn is None
    with kernels.KernelSet(layout, {layer: kernel}):
        grad = layer(x)
    assert grad.grad_fn is not None and kernel_calls[layout] == 2  # gradients wanted: F.linear runs
    torch.testing.assert_close(grad.detach(), fast)


def test_an_unknown_layout_is_refused_naming_the_ones_there_are(model):
    with pytest.raises(ValueError, match="unknown layout 'blocked'.*transposed"):
        kernels.prepare("blocked", torch.zeros(4, 4), batch_size=1)
    with pytest.raises(ValueError, match="unknown layout 'blocked'"):
        model.prepare_kernels(batch_size=1, layout="blocked")


@pytest.mark.parametrize("layout", sorted(kernels.LAYOUTS))
def test_prepared_kernels_run_within_their_block_and_give_the_same_logits(model, config, layout, kernel_calls):
    idx = torch.randint(0, config.n_vocab, (3, 10))
    linears = 1 + 4 * config.n_layer  # four per block and the tied output projection
    with torch.no_grad():
        plain = model(idx)[0]
        plain_cache = model.new_kv_cache(3)
        plain_next = model.decode(idx, plain_cache, 0)
        prepared = model.prepare_kernels(batch_size=3, layout=layout)
        assert prepared.layout == layout and kernel_calls[layout] == 0
        with prepared:
            logits = model(idx)[0]
            assert kernel_calls[layout] == linears
            cache = model.new_kv_cache(3)
            next_logits = model.decode(idx, cache, 0)
            assert kernel_calls[layout] == 2 * linears
        model(idx)
    assert kernel_calls[layout] == 2 * linears  # outside the block the default kernel runs
    torch.testing.assert_close(logits, plain)
    torch.testing.assert_close(next_logits, plain_next)
    written = [kv[:, :, :, :10] for kv in cache], [kv[:, :, :, :10] for kv in plain_cache]  # the rest is unset
    torch.testing.assert_close(*written)


def test_weights_other_than_fp32_on_cpu_get_no_kernels_and_sample_as_before(model, config):
    model = model.to(torch.bfloat16)
    prepared = model.prepare_kernels(batch_size=2)
    assert prepared.layout is None and prepared.kernels == {}
    idx = torch.randint(0, config.n_vocab, (2, 5))
    with torch.no_grad():
        plain = model(idx)[0]
        with prepared:
            torch.testing.assert_close(model(idx)[0], plain)


def test_kernels_are_in_effect_only_in_the_entering_thread_and_nest(model):
    outer = model.prepare_kernels(batch_size=2, layout="transposed")
    inner = model.prepare_kernels(batch_size=2, layout="transposed")
    seen = []
    with outer:
        assert kernels.active_kernel(model.wte) is outer.kernels[model.wte]
        with inner:
            assert kernels.active_kernel(model.wte) is inner.kernels[model.wte]
            thread = threading.Thread(target=lambda: seen.append(kernels.active_kernel(model.wte)))
            thread.start()
            thread.join()
        assert kernels.active_kernel(model.wte) is outer.kernels[model.wte]
    assert kernels.active_kernel(model.wte) is None and seen == [None]


def test_the_layout_is_timed_once_per_shapes_and_batch_and_the_fastest_kept(model, monkeypatch):
    monkeypatch.setattr(kernels, "LAYOUTS", {"slow": kernels.Transposed, "quick": kernels.Transposed})
    monkeypatch.setattr(kernels, "_fastest", {})
    timings, calls = {"slow": 2.0, "quick": 1.0}, []

    def fake_pass_times(weights, batch_size):
        calls.append((len(weights), batch_size))
        return dict(timings)

    monkeypatch.setattr(kernels, "_pass_times", fake_pass_times)
    assert model.prepare_kernels(batch_size=2).layout == "quick"
    timings = {"slow": 1.0, "quick": 2.0}  # remembered: not timed again for the same batch size
    assert model.prepare_kernels(batch_size=2).layout == "quick"
    assert model.prepare_kernels(batch_size=5).layout == "slow"
    matrices = 1 + 4 * model.config.n_layer  # all of them: a test model is far below TIMING_BYTES
    assert calls == [(matrices, 2), (matrices, 5)]


def test_timing_covers_every_shape_then_matrices_until_enough_bytes(monkeypatch):
    monkeypatch.setattr(kernels, "TIMING_BYTES", 3 * 64 * 64 * 4)
    weights = [torch.randn(64, 64) for _ in range(5)] + [torch.randn(96, 64), torch.randn(64, 64)]
    sample = kernels._timing_sample(weights)
    assert [tuple(w.shape) for w in sample] == [(64, 64)] * 3 + [(96, 64)]


def test_deterministic_mode_fixes_the_layout_without_timing(monkeypatch):
    monkeypatch.setattr(kernels, "_fastest", {})
    monkeypatch.setattr(kernels, "_pass_times", lambda weights, b: pytest.fail("timed in deterministic mode"))
    torch.use_deterministic_algorithms(True)
    try:
        assert kernels.fastest_layout([torch.ones(64, 48)], batch_size=1) == kernels.FIXED_LAYOUT
    finally:
        torch.use_deterministic_algorithms(False)
    assert kernels._fastest == {}  # nothing remembered: outside the mode the layout is timed as usual


def test_timing_reports_every_layout_and_leaves_the_global_random_stream_alone(monkeypatch):
    monkeypatch.setattr(kernels, "_fastest", {})
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    assert kernels.fastest_layout([torch.ones(64, 48), torch.ones(48, 64)], batch_size=2) in kernels.LAYOUTS
    torch.testing.assert_close(torch.rand(3), expected)
    times = kernels._pass_times([torch.ones(64, 48)], 1)
    assert set(times) == set(kernels.LAYOUTS) and all(0 < t < float("inf") for t in times.values())
