"""The native step above batch 1 (decode_step.c's decode_batch) and the native attention over the cache that
GPT.decode uses (modelcore/native.py), against the model in torch with torch's own attention."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from modelcore import fused, native, quantize
from modelcore.model import GPTConfig
from modelcore.sample import generate

from .test_fused import EVEN, ODD, counted_steps, native_library, trained_looking  # noqa: F401 (autouse)

# 64 dims in heads of 32 and a vocabulary that is not a multiple of the 16-row panels.
WIDE = GPTConfig(n_vocab=300, n_ctx=40, n_embd=64, n_head=2, n_layer=2)
BATCH = 7  # tiles of 3 and 4 rows with AVX2, one of 7 with AVX-512 (decode_step.c's linear_panels)


@pytest.fixture
def torch_attention(monkeypatch):
    """GPT.decode with torch's attention (SDPA) only: the reference the native code is held to."""
    monkeypatch.setattr(native, "cached_attention", lambda qkv, kv, pos: None)


def prompted(model, rows: int, prompt: list[int]) -> list[torch.Tensor]:
    cache = [kv.zero_() for kv in model.new_kv_cache(rows)]  # uninitialised, it may hold NaNs that never equal
    with torch.inference_mode():
        model.decode(torch.tensor([prompt] * rows), cache, 0)
    return cache


@pytest.mark.parametrize("config", [ODD, EVEN, WIDE], ids=["odd-sizes", "even", "wide-heads"])
def test_each_batched_step_gives_the_torch_logits_and_fills_the_same_cache(config, torch_attention):
    model = trained_looking(config)
    prompt = [3, 1, 4]
    torch_cache, fused_cache = prompted(model, BATCH, prompt), prompted(model, BATCH, prompt)
    step = fused.decoder(model, fused_cache)
    tokens = torch.arange(BATCH) + 5
    with torch.inference_mode():
        for pos in range(len(prompt), config.n_ctx):  # up to the last position of the context
            rows = BATCH if pos < 12 else 4  # then a last, smaller batch in the same cache
            expected = model.decode(tokens[:rows, None], [kv[:, :rows] for kv in torch_cache], pos)
            got = step(tokens[:rows], pos)
            assert got.shape == (rows, config.n_vocab)
            assert torch.allclose(got, expected, atol=1e-5, rtol=0), (pos, (got - expected).abs().max())
            tokens[:rows] = expected.argmax(dim=-1)
    for mine, theirs in zip(fused_cache, torch_cache, strict=True):
        assert torch.allclose(mine, theirs, atol=1e-5, rtol=0)


@pytest.mark.parametrize("batch", [BATCH, 25], ids=["7-rows", "shard-25-rows"])
def test_a_row_s_logits_do_not_depend_on_the_batch_or_the_thread_count(batch):
    model = trained_looking(WIDE)
    cache = prompted(model, batch, [1, 2])
    tokens = torch.arange(batch) + 7
    threads = torch.get_num_threads()
    results = []
    try:
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            results.append(fused.decoder(model, [kv.clone() for kv in cache])(tokens, 2))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(results[0], results[1]) and torch.equal(results[0], results[2])
    # Row 0 computed in a tile and alone, the last row in another tile and alone: the same arithmetic.
    alone = fused.decoder(model, [kv.clone() for kv in cache])(tokens[:1], 2)
    assert torch.equal(alone[0], results[0][0])
    swapped = fused.decoder(model, [kv.clone() for kv in cache])(tokens.flip(0), 2)
    assert torch.equal(swapped[0], results[0][-1]) and torch.equal(swapped[-1], results[0][0])


def test_batched_sampling_runs_on_the_native_step_and_draws_what_torch_draws(monkeypatch, torch_attention):
    model = trained_looking(ODD)
    kwargs = dict(n_samples=8, batch_size=3, max_new_tokens=20, top_k=10, prompt_tokens=[5, 6], eot_id=None, seed=4)
    steps = counted_steps(monkeypatch)
    got = list(generate(model, **kwargs))
    assert steps == list(range(2, 21)) * 3  # every token after the first, batches of 3, 3 and 2
    steps.clear()
    assert list(generate(model, **kwargs, fused_step=False)) == got and steps == []
    assert len({tuple(s.tokens) for s in got}) == 8  # the samples differ, so the comparison says something


def _cpu_flags() -> set[str]:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return set()
    return set(next((line.split(":", 1)[1] for line in lines if line.startswith("flags")), "").split())


# A shard's logits at batch 25 and at batch 1, fp32 and int8, written to argv[1]: run in a process of its own
# per build.
_SHARD_LOGITS = """
import sys, torch
from modelcore import fused, quantize
from tests.modelcore.test_fused import trained_looking
from tests.modelcore.test_fused_batch import WIDE, prompted
model = trained_looking(WIDE)
reference, int8 = quantize.with_weights(trained_looking(WIDE), "int8")
tokens, out = torch.arange(25) + 3, []
for m, weights in ((model, None), (reference, int8)):
    for rows in (25, 1):
        step = fused.decoder(m, prompted(m, rows, [1, 2]), weights)
        for pos in range(2, 6):
            out.append(step(tokens[:rows], pos).reshape(rows, -1))
torch.save(torch.cat(out), sys.argv[1])
"""


@pytest.mark.skipif("avx512f" not in _cpu_flags(), reason="compares an AVX-512 build with an AVX2 one")
def test_an_avx2_build_gives_the_same_bits_as_an_avx512_one(tmp_path):
    # Redone shards must repeat on every host of a fleet, whatever the vector width its build uses.
    root = Path(__file__).resolve().parents[2]
    results = []
    (tmp_path / "cache").mkdir(mode=0o700)
    shutil.copy2(native.library()._name, tmp_path / "cache")  # the default flags' build: only the AVX2 one compiles
    for extra in ("", "-mno-avx512f"):
        env = {**os.environ, "MODELCORE_NATIVE_CACHE": str(tmp_path / "cache"), "MODELCORE_NATIVE_CFLAGS": extra,
               "PYTHONPATH": str(root)}
        out = tmp_path / f"logits{extra}.pt"
        subprocess.run([sys.executable, "-c", _SHARD_LOGITS, str(out)], cwd=root, env=env, check=True, timeout=300)
        results.append(torch.load(out))
    assert len(list((tmp_path / "cache").glob("decode_step-*.so"))) == 2  # two builds, not one loaded twice
    assert torch.equal(results[0], results[1])


@pytest.mark.parametrize("config", [ODD, WIDE], ids=["odd-sizes", "wide-heads"])
def test_the_batched_int8_step_gives_the_dequantized_model_s_logits(config, torch_attention):
    reference, int8 = quantize.with_weights(trained_looking(config), "int8")
    torch_cache, fused_cache = prompted(reference, BATCH, [3, 1]), prompted(reference, BATCH, [3, 1])
    step = fused.decoder(reference, fused_cache, int8)
    tokens = torch.arange(BATCH) + 5
    with torch.inference_mode():
        for pos in range(2, config.n_ctx):
            expected = reference.decode(tokens[:, None], torch_cache, pos)
            got = step(tokens, pos)
            # The row's scale is applied to the sum, not to each weight: rounding apart, the same numbers.
            assert torch.allclose(got, expected, atol=1e-4, rtol=1e-5), (pos, (got - expected).abs().max())
            tokens = expected.argmax(dim=-1)
    for mine, theirs in zip(fused_cache, torch_cache, strict=True):
        assert torch.allclose(mine, theirs, atol=1e-4, rtol=1e-5)
    # It read the int8 values, not the fp32 model's matrices: the fp32 step differs.
    fp32 = fused.decoder(trained_looking(config), prompted(trained_looking(config), BATCH, [3, 1]))(tokens, 2)
    assert not torch.allclose(step(tokens, 2), fp32, atol=1e-4)


def test_the_packed_matrices_are_kept_with_the_model_until_a_weight_changes(monkeypatch, torch_attention):
    library = fused._library()
    packed = []
    for name in ("pack_panels", "pack_panels_q8"):
        pack = getattr(library, name)
        monkeypatch.setattr(library, name, lambda *args, pack=pack, name=name: packed.append(name) or pack(*args))
    model, tokens = trained_looking(WIDE), torch.arange(BATCH) + 5
    matrices = len(quantize.matrix_names(model))

    def step(m=model, int8=None):
        return fused.decoder(m, prompted(m, BATCH, [3, 1]), int8)(tokens, 2)

    first = step()
    assert packed == ["pack_panels"] * matrices
    assert torch.equal(step(), first) and len(packed) == matrices  # a shard after shard: no packing again
    with torch.no_grad():
        model.h[1].mlp.c_fc.weight.mul_(0.5)  # trained a little further, say
    changed = step()
    assert len(packed) == 2 * matrices
    with torch.inference_mode():
        expected = model.decode(tokens[:, None], prompted(model, BATCH, [3, 1]), 2)
    assert torch.allclose(changed, expected, atol=1e-5, rtol=0) and not torch.allclose(changed, first, atol=1e-3)
    reference, int8 = quantize.with_weights(model, "int8")
    assert torch.equal(step(reference, int8), step(reference, int8))
    assert packed[2 * matrices :] == ["pack_panels_q8"] * matrices  # the int8 values, packed once


@pytest.mark.parametrize(("tokens", "pos", "message"), [
    ([1, ODD.n_vocab, 2], 2, "outside the vocabulary"), ([1, -1], 2, "outside the vocabulary"),
    ([1, 2**32 + 5], 2, "outside the vocabulary"),  # not wrapped into the vocabulary by a narrowing
    ([1, 2], ODD.n_ctx, "exceeds n_ctx"), ([1] * 4, 2, "4 tokens for a cache of 3 rows"), ([], 2, "0 tokens"),
])  # fmt: skip
def test_tokens_a_position_or_a_batch_out_of_range_are_refused_and_write_nothing(tokens, pos, message):
    model = trained_looking(ODD)
    cache = prompted(model, 3, [1, 2])
    before = [kv.clone() for kv in cache]
    with pytest.raises(ValueError, match=message):
        fused.decoder(model, cache)(tokens, pos)
    assert all(torch.equal(a, b) for a, b in zip(cache, before, strict=True))


@pytest.mark.parametrize("head_dim", [10, 64])
def test_native_attention_over_a_batch_slice_of_the_cache_matches_torch(head_dim):
    torch.manual_seed(0)
    B, H, n_ctx, pos = 5, 3, 24, 17
    full = torch.randn(2, B, H, n_ctx, head_dim)
    kv, reference = full[:, :3], full[:, :3].clone()  # the first 3 rows of a cache of 5, as a last batch
    qkv = torch.randn(3, 1, 3, H, head_dim) * 3
    untouched = full[:, 3:].clone()
    got = native.cached_attention(qkv, kv, pos)
    reference[:, :, :, pos] = qkv[:, 0, 1:].permute(1, 0, 2, 3)
    k, v = reference[:, :, :, : pos + 1].unbind(0)
    expected = F.scaled_dot_product_attention(qkv[:, :, 0].transpose(1, 2), k, v).transpose(1, 2).reshape(3, 1, -1)
    assert got.shape == (3, 1, H * head_dim)
    assert torch.allclose(got, expected, atol=1e-5, rtol=0), (got - expected).abs().max()
    assert torch.equal(kv, reference)  # this step's keys and values written, nothing else
    assert torch.equal(full[:, 3:], untouched)  # the rows outside the slice not touched


def test_native_attention_declines_what_it_cannot_run():
    qkv, kv = torch.randn(2, 1, 3, 4, 8), torch.randn(2, 2, 4, 16, 8)
    assert native.cached_attention(qkv, kv, 3) is not None
    for q, cache, pos in [
        (qkv, kv[:1].expand(2, -1, -1, -1, -1), 3),  # keys and values in the same memory
        (torch.randn(2, 2, 3, 4, 8), kv, 3),  # two new tokens per row: a prompt
        (qkv.double(), kv.double(), 3),
        (qkv, kv.transpose(3, 4).contiguous().transpose(3, 4), 3),  # not the cache's layout
        (qkv, kv, 16),  # past the cache
    ]:
        assert native.cached_attention(q, cache, pos) is None


def test_a_model_training_with_dropout_keeps_torch_s_attention_even_with_a_cache(monkeypatch):
    calls = []
    attend = native.cached_attention
    monkeypatch.setattr(native, "cached_attention", lambda *args: calls.append(1) or attend(*args))
    model = trained_looking(GPTConfig(**{**ODD.to_hparams(), "dropout": 0.5}))
    cache = [kv.zero_() for kv in model.new_kv_cache(2)]
    with torch.no_grad():
        model.decode(torch.tensor([[1], [2]]), cache, 0)
        assert calls == [1] * ODD.n_layer  # in eval mode: native
        model.train()
        model.decode(torch.tensor([[1], [2]]), cache, 1)
    assert calls == [1] * ODD.n_layer  # in training, with dropout: SDPA's, which drops
