import math

import pytest
import torch

from modelcore import kernels
from modelcore.model import GPT, GPTConfig, Linear, parameter_count

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


def test_the_fused_loss_and_its_gradients_equal_cross_entropy_with_ignored_targets(config):
    torch.manual_seed(0)
    a, b = GPT(config), GPT(config)
    b.load_state_dict(a.state_dict())
    x = torch.randint(0, config.n_vocab, (3, 16))
    y = torch.randint(0, config.n_vocab, (3, 16))
    y[:, :5] = -1  # e.g. positions scored by an earlier window
    _, fused = a(x, y)
    logits, _ = b(x)
    reference = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=-1)
    fused.backward()
    reference.backward()
    torch.testing.assert_close(fused, reference)
    for (name, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, msg=name)


@pytest.mark.parametrize("layout", sorted(kernels.LAYOUTS))
@pytest.mark.parametrize("shape", [(1, 1, 32), (3, 1, 32), (2, 7, 32)])
def test_every_inference_layout_agrees_with_f_linear(layout, shape):
    torch.manual_seed(0)
    layer = Linear(32, 96)
    x = torch.randn(*shape)
    with torch.no_grad():
        layer.kernel = kernels.prepare(layout, layer.weight, batch_size=shape[0])
        fast = layer(x)
        no_bias = kernels.linear(x, layer.weight, None, layer.kernel)
    torch.testing.assert_close(fast, torch.nn.functional.linear(x, layer.weight, layer.bias))
    torch.testing.assert_close(no_bias, torch.nn.functional.linear(x, layer.weight))
    assert fast.grad_fn is None
    grad = layer(x)
    assert grad.grad_fn is not None  # with gradients wanted, the autograd-aware F.linear runs
    torch.testing.assert_close(grad.detach(), fast)


def test_an_unknown_layout_is_refused_naming_the_ones_there_are():
    with pytest.raises(ValueError, match="unknown layout 'blocked'.*transposed"):
        kernels.prepare("blocked", torch.zeros(4, 4), batch_size=1)


@pytest.mark.parametrize("layout", sorted(kernels.LAYOUTS))
def test_prepared_kernels_give_the_same_logits_and_are_dropped_afterwards(model, config, layout):
    idx = torch.randint(0, config.n_vocab, (3, 10))
    with torch.no_grad():
        plain = model(idx)[0]
        with model.prepared_kernels(batch_size=3, layout=layout) as chosen:
            assert chosen == layout
            assert model.h[0].mlp.c_fc.kernel is not None and model.head_kernel is not None
            prepared = model(idx)[0]
    torch.testing.assert_close(prepared, plain)
    assert model.head_kernel is None and all(m.kernel is None for m in model.modules() if isinstance(m, Linear))


def test_the_layout_is_timed_once_per_shapes_and_batch_and_the_fastest_kept(model, monkeypatch):
    timings = {"transposed": 2.0, "onednn": 1.0} if "onednn" in kernels.LAYOUTS else {"transposed": 1.0}
    calls = []

    def fake_pass_times(weights, batch_size):
        calls.append((len(weights), batch_size))
        return dict(timings)

    monkeypatch.setattr(kernels, "_fastest", {})
    monkeypatch.setattr(kernels, "_pass_times", fake_pass_times)
    with torch.no_grad(), model.prepared_kernels(batch_size=2) as chosen:
        assert chosen == min(timings, key=timings.__getitem__)
    with torch.no_grad(), model.prepared_kernels(batch_size=2):
        pass
    timings = {name: 1.0 / t for name, t in timings.items()}  # now the other is faster
    with torch.no_grad(), model.prepared_kernels(batch_size=5) as chosen:
        assert chosen == min(timings, key=timings.__getitem__)
    matrices = 1 + 4 * model.config.n_layer  # the head and four per block, all within TIMING_BYTES here
    assert calls == [(matrices, 2), (matrices, 5)]


def test_timing_covers_matrices_until_enough_bytes_and_reports_every_layout(monkeypatch):
    monkeypatch.setattr(kernels, "TIMING_BYTES", 3 * 64 * 64 * 4)
    monkeypatch.setattr(kernels, "_fastest", {})
    seen = []
    real = kernels._pass_times
    monkeypatch.setattr(kernels, "_pass_times", lambda weights, b: seen.append(len(weights)) or real(weights, b))
    weights = [torch.randn(64, 64) for _ in range(5)]
    assert kernels.fastest_layout(weights, batch_size=1) in kernels.LAYOUTS
    assert seen == [3]
    times = real(weights[:2], 1)
    assert set(times) == set(kernels.LAYOUTS) and all(0 < t < float("inf") for t in times.values())
