"""The native batch-1 decoding step (modelcore/fused.py, decode_step.c) against the model in torch."""

import pytest
import torch

from modelcore import fused
from modelcore.model import GPT, GPTConfig
from modelcore.sample import generate

# 40 dims in 4 heads of 10: rows and heads whose lengths are not multiples of the 16-float vectors.
ODD = GPTConfig(n_vocab=77, n_ctx=32, n_embd=40, n_head=4, n_layer=3)
EVEN = GPTConfig(n_vocab=256, n_ctx=48, n_embd=64, n_head=2, n_layer=2)


@pytest.fixture(autouse=True)
def native_library():
    if reason := fused.unavailable_reason():
        pytest.fail(f"the native step must build where the tests run: {reason}")


def trained_looking(config: GPTConfig, seed: int = 0) -> GPT:
    """Random weights with LayerNorm and bias parameters moved off 1 and 0, so every parameter counts."""
    torch.manual_seed(seed)
    model = GPT(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 1:
                p.add_(torch.randn_like(p) * 0.1)
    return model


def after_prompt(model: GPT, prompt: list[int]) -> list[torch.Tensor]:
    cache = [kv.zero_() for kv in model.new_kv_cache(1)]  # left uninitialised, it may hold NaNs that never equal
    with torch.inference_mode():
        model.decode(torch.tensor([prompt]), cache, 0)
    return cache


@pytest.mark.parametrize("config", [ODD, EVEN], ids=["odd-sizes", "vector-sizes"])
def test_each_step_gives_the_torch_logits_and_fills_the_same_cache(config):
    model = trained_looking(config)
    prompt = [3, 1, 4, 1, 5]
    torch_cache, fused_cache = after_prompt(model, prompt), after_prompt(model, prompt)
    step = fused.decoder(model, fused_cache)
    token = 9
    with torch.inference_mode():
        for pos in range(len(prompt), config.n_ctx):  # up to the last position of the context
            expected = model.decode(torch.tensor([[token]]), torch_cache, pos)
            got = step(token, pos)
            assert got.shape == (1, config.n_vocab)
            assert torch.allclose(got, expected, atol=1e-5, rtol=0), (pos, (got - expected).abs().max())
            token = int(expected.argmax())
    for mine, theirs in zip(fused_cache, torch_cache, strict=True):
        assert torch.allclose(mine, theirs, atol=1e-5, rtol=0)


def test_logits_are_bitwise_the_same_whatever_the_number_of_threads():
    model = trained_looking(ODD)
    prompted = after_prompt(model, [1, 2])  # once: torch's own kernels may round by thread count
    threads = torch.get_num_threads()
    results = []
    try:
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            step = fused.decoder(model, [kv.clone() for kv in prompted])
            results.append(torch.cat([step(7, 2), step(8, 3), step(9, 4)]))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(results[0], results[1]) and torch.equal(results[0], results[2])


@pytest.mark.parametrize(("token", "pos", "message"), [
    (ODD.n_vocab, 2, "outside the vocabulary"), (-1, 2, "outside the vocabulary"),
    (1, ODD.n_ctx, "exceeds n_ctx"), (1, -1, "exceeds n_ctx"),
])  # fmt: skip
def test_a_token_or_position_out_of_range_is_refused_and_writes_nothing(token, pos, message):
    model = trained_looking(ODD)
    cache = after_prompt(model, [1, 2])
    before = [kv.clone() for kv in cache]
    with pytest.raises(ValueError, match=message):
        fused.decoder(model, cache)(token, pos)
    assert all(torch.equal(a, b) for a, b in zip(cache, before, strict=True))


def test_what_the_step_cannot_run_on_is_refused_with_the_reason():
    model = trained_looking(ODD)
    with pytest.raises(ValueError, match="caches of shape"):
        fused.decoder(model, model.new_kv_cache(2))  # batch 2
    with pytest.raises(ValueError, match="caches of shape"):
        fused.decoder(model, model.new_kv_cache(1)[:-1])
    with pytest.raises(ValueError, match="fp32 CPU weights"):
        fused.decoder(trained_looking(ODD).to(torch.float64), model.new_kv_cache(1))
    dropping = GPT(GPTConfig(**{**ODD.to_hparams(), "dropout": 0.1}))  # in training mode
    with pytest.raises(ValueError, match="eval mode"):
        fused.decoder(dropping, dropping.new_kv_cache(1))


def counted_steps(monkeypatch) -> list[int]:
    calls = []
    call = fused.FusedDecoder.__call__
    monkeypatch.setattr(fused.FusedDecoder, "__call__", lambda self, token, pos: calls.append(pos) or call(self, token, pos))
    return calls


def test_batch_1_sampling_runs_on_the_fused_step_and_draws_what_torch_draws(monkeypatch):
    model = trained_looking(ODD)
    kwargs = dict(n_samples=3, batch_size=1, max_new_tokens=20, top_k=10, prompt_tokens=[5, 6], eot_id=None, seed=4)
    steps = counted_steps(monkeypatch)
    got = list(generate(model, **kwargs))
    assert steps == list(range(2, 21)) * 3  # every token after the first, every sample
    steps.clear()
    assert list(generate(model, **kwargs, fused_step=False)) == got and steps == []
    assert len({tuple(s.tokens) for s in got}) == 3  # the samples differ, so the comparison says something


def test_larger_batches_stay_in_torch(monkeypatch):
    model = trained_looking(ODD)
    steps = counted_steps(monkeypatch)
    samples = list(generate(model, n_samples=3, batch_size=2, max_new_tokens=5, prompt_tokens=[1], eot_id=None))
    assert len(samples) == 3 and steps == []


def test_without_a_compiler_sampling_stays_in_torch_and_says_why(monkeypatch, tmp_path):
    model = trained_looking(ODD)
    kwargs = dict(n_samples=2, batch_size=1, max_new_tokens=8, prompt_tokens=[5], eot_id=None, seed=1)
    expected = list(generate(model, **kwargs, fused_step=False))
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    monkeypatch.setenv("MODELCORE_NATIVE_CACHE", str(tmp_path / "cache"))
    fused._build.cache_clear()
    try:
        assert "failed" in fused.unavailable_reason()
        assert fused.decoder(model, model.new_kv_cache(1)) is None
        assert list(generate(model, **kwargs)) == expected
    finally:
        fused._build.cache_clear()


def test_a_failing_build_reports_the_compiler_error(monkeypatch, tmp_path):
    compiler = tmp_path / "cc"
    compiler.write_text("#!/bin/sh\n[ \"$1\" = --version ] && exit 0\necho 'decode_step.c:1: error: no' >&2\nexit 1\n")
    compiler.chmod(0o755)
    monkeypatch.setenv("CC", str(compiler))
    monkeypatch.setenv("MODELCORE_NATIVE_CACHE", str(tmp_path / "cache"))
    fused._build.cache_clear()
    try:
        assert "decode_step.c:1: error: no" in fused.unavailable_reason()
        assert list((tmp_path / "cache").iterdir()) == []  # no half-built library left behind
    finally:
        fused._build.cache_clear()


def test_the_library_is_built_once_into_the_cache_and_reused(monkeypatch, tmp_path):
    monkeypatch.setenv("MODELCORE_NATIVE_CACHE", str(tmp_path))
    fused._build.cache_clear()
    try:
        assert fused.unavailable_reason() is None
        [built] = tmp_path.glob("decode_step-*.so")
        stamp = built.stat().st_mtime_ns
        fused._build.cache_clear()
        assert fused.unavailable_reason() is None
        assert list(tmp_path.glob("decode_step-*.so")) == [built] and built.stat().st_mtime_ns == stamp
    finally:
        fused._build.cache_clear()
