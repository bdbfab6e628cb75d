"""The native batch-1 decoding step (modelcore/fused.py, decode_step.c) against the model in torch."""

import os
import shutil
import subprocess
import sys

import pytest
import torch

from modelcore import fused, native
from modelcore.model import GPT, GPTConfig
from modelcore.sample import END_CHECK_INTERVAL, Sample, generate

# 40 dims in 4 heads of 10: rows and heads whose lengths are not multiples of the 16-float vectors.
ODD = GPTConfig(n_vocab=77, n_ctx=32, n_embd=40, n_head=4, n_layer=3)
EVEN = GPTConfig(n_vocab=256, n_ctx=48, n_embd=64, n_head=2, n_layer=2)


@pytest.fixture(autouse=True)
def native_library():
    if reason := native.unavailable_reason():
        pytest.fail(f"the native step must build where the tests run: {reason}")


def trained_looking(config: GPTConfig, seed: int = 0) -> GPT:
    """Random weights with LayerNorm and bias parameters moved off 1 and 0, so every parameter counts, and
    the q/k/v and MLP input matrices scaled up: at init scale the GELU's inputs are so small that its tanh
    and erf forms agree, and attention is almost uniform."""
    torch.manual_seed(seed)
    model = GPT(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.add_(torch.randn_like(p) * 0.1)
            elif name.endswith(("c_attn.weight", "c_fc.weight")):
                p.mul_(10)
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
    odd_one = trained_looking(ODD)
    odd_one.h[1].mlp.c_fc = torch.nn.Linear(ODD.n_embd, 2 * ODD.n_embd)  # a module swapped for another shape
    dropping = GPT(GPTConfig(**{**ODD.to_hparams(), "dropout": 0.1}))  # in training mode
    cases = [
        (model, model.new_kv_cache(1)[:-1] + model.new_kv_cache(2)[-1:], "caches of shape"),  # batches differ
        (model, model.new_kv_cache(1)[:-1], "caches of shape"),
        (model, [kv.transpose(3, 4) for kv in model.new_kv_cache(1)], "caches of shape"),
        (trained_looking(ODD).to(torch.float64), model.new_kv_cache(1), "fp32 CPU weights"),
        (odd_one, model.new_kv_cache(1), "h.1.mlp.c_fc.weight is not"),
        (dropping, dropping.new_kv_cache(1), "eval mode"),
    ]
    for candidate, cache, reason in cases:
        assert reason in fused.unfit(candidate, cache)
        assert fused.decoder(candidate, cache) is None  # sampling stays in torch for these
        with pytest.raises(ValueError, match=reason):
            fused.FusedDecoder(fused._library(), candidate, cache)
    assert fused.unfit(model, model.new_kv_cache(1)) is None


def test_logits_are_fp32_whatever_torch_s_default_dtype():
    model = trained_looking(ODD)
    expected = fused.decoder(model, after_prompt(model, [1, 2]))(7, 2)
    default = torch.get_default_dtype()
    try:
        for dtype in (torch.float16, torch.float64):  # buffers made in these would be too small or misread
            torch.set_default_dtype(dtype)
            got = fused.decoder(model, after_prompt(model, [1, 2]))(7, 2)
            assert got.dtype == torch.float32 and torch.equal(got, expected)
    finally:
        torch.set_default_dtype(default)


def test_a_step_keeps_reading_the_weights_it_was_made_with_after_they_are_replaced():
    model = trained_looking(ODD)
    prompted = after_prompt(model, [1, 2])
    step = fused.decoder(model, [kv.clone() for kv in prompted])
    expected = fused.decoder(model, [kv.clone() for kv in prompted])(7, 2)
    model.double()  # frees the fp32 parameters but for what the step holds
    torch.randn(10_000_000)  # reuse freed memory, if any was freed
    assert torch.equal(step(7, 2), expected)


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


def test_a_batch_1_row_stops_at_end_of_text_on_the_step_that_produced_it(monkeypatch):
    model = trained_looking(ODD)
    kwargs = dict(n_samples=1, batch_size=1, max_new_tokens=30, top_k=5, prompt_tokens=[5, 6], seed=2)
    [free] = generate(model, **kwargs, eot_id=None, fused_step=False)
    # The first token after a few steps not seen before it (a row ending at it ends there), on a step
    # where the periodic check for ended rows does not fall.
    cut = next(i for i in range(3, len(free.tokens))
               if free.tokens[i] not in free.tokens[:i] and i % END_CHECK_INTERVAL != END_CHECK_INTERVAL - 1)  # fmt: skip
    eot = free.tokens[cut]
    steps = counted_steps(monkeypatch)
    [got] = generate(model, **kwargs, eot_id=eot)
    assert got == Sample(free.tokens[:cut], True, cut)
    assert steps == list(range(2, 2 + cut))  # none after the token that ended it
    [torch_only] = generate(model, **kwargs, eot_id=eot, fused_step=False)
    assert torch_only == got


def test_unconditional_batch_1_sampling_matches_torch():
    model = trained_looking(ODD)
    kwargs = dict(n_samples=4, batch_size=1, max_new_tokens=25, top_p=0.9, temperature=0.8, eot_id=0, seed=9)
    got = list(generate(model, **kwargs))
    assert got == list(generate(model, **kwargs, fused_step=False))
    assert len({tuple(s.tokens) for s in got}) == 4 and all(s.length > 3 for s in got)




def test_without_a_compiler_sampling_stays_in_torch_and_says_why(monkeypatch, tmp_path):
    model = trained_looking(ODD)
    kwargs = dict(n_samples=2, batch_size=1, max_new_tokens=8, prompt_tokens=[5], eot_id=None, seed=1)
    expected = list(generate(model, **kwargs, fused_step=False))
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    monkeypatch.setenv("MODELCORE_NATIVE_CACHE", str(tmp_path / "cache"))
    native._build.cache_clear()
    try:
        assert "failed" in native.unavailable_reason()
        assert fused.decoder(model, model.new_kv_cache(1)) is None
        assert list(generate(model, **kwargs)) == expected
    finally:
        native._build.cache_clear()


def test_a_failing_build_reports_the_compiler_error(monkeypatch, tmp_path):
    compiler = tmp_path / "cc"
    compiler.write_text("#!/bin/sh\n[ \"$1\" = --version ] && exit 0\necho 'decode_step.c:1: error: no' >&2\nexit 1\n")
    compiler.chmod(0o755)
    monkeypatch.setenv("CC", str(compiler))
    monkeypatch.setenv("MODELCORE_NATIVE_CACHE", str(tmp_path / "cache"))
    native._build.cache_clear()
    try:
        assert "decode_step.c:1: error: no" in native.unavailable_reason()
        assert list((tmp_path / "cache").iterdir()) == []  # no half-built library left behind
    finally:
        native._build.cache_clear()


def test_a_cache_folder_others_can_write_to_is_not_trusted(monkeypatch, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.setenv("MODELCORE_NATIVE_CACHE", str(shared))
    native._build.cache_clear()
    try:
        assert "not this user's alone" in native.unavailable_reason()
        model = trained_looking(ODD)
        assert fused.decoder(model, model.new_kv_cache(1)) is None
    finally:
        native._build.cache_clear()


def test_a_damaged_cached_library_is_built_again(tmp_path):
    # In fresh processes: one that has loaded a library keeps its mapping whatever happens to the file. The
    # cache starts with this process's library (the same source, flags, compiler and CPU: the name a fresh
    # process looks for), so that only the rebuild compiles.
    shutil.copy2(native.library()._name, tmp_path)
    env = {**os.environ, "MODELCORE_NATIVE_CACHE": str(tmp_path)}
    check = [sys.executable, "-c", "from modelcore import native; print(native.unavailable_reason())"]
    assert subprocess.run(check, env=env, capture_output=True, text=True, check=True).stdout == "None\n"
    [built] = tmp_path.glob("decode_step-*.so")  # the one copied, found and loaded: nothing built beside it
    built.unlink()
    built.write_bytes(b"\x7fELF cut short")
    built.chmod(0o755)
    assert subprocess.run(check, env=env, capture_output=True, text=True, check=True).stdout == "None\n"
    assert built.stat().st_size > 1000


def test_the_library_is_built_once_into_the_cache_and_reused(monkeypatch, tmp_path):
    monkeypatch.setenv("MODELCORE_NATIVE_CACHE", str(tmp_path))
    native._build.cache_clear()
    try:
        assert native.unavailable_reason() is None
        [built] = tmp_path.glob("decode_step-*.so")
        stamp = built.stat().st_mtime_ns
        native._build.cache_clear()
        assert native.unavailable_reason() is None
        assert list(tmp_path.glob("decode_step-*.so")) == [built] and built.stat().st_mtime_ns == stamp
    finally:
        native._build.cache_clear()
