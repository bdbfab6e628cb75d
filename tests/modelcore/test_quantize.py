"""Int8 weight-only sampling (modelcore/quantize.py): the native step reading int8 against its reference path,
the model in torch with the dequantized matrices."""

import pytest
import torch

from modelcore import fused, quantize
from modelcore.model import GPTConfig
from modelcore.sample import generate

from .test_fused import EVEN, ODD, after_prompt, native_library, trained_looking  # noqa: F401 (autouse)

# 48 dims: rows of 32 + 16 floats, the one vector loop ODD (40) and EVEN (64, 256) leave out.
SIXTEEN = GPTConfig(n_vocab=70, n_ctx=24, n_embd=48, n_head=4, n_layer=2)


def test_rows_round_to_the_nearest_step_of_their_own_scale():
    torch.manual_seed(0)
    weight = torch.randn(6, 50) * torch.tensor([1e-3, 0.1, 1.0, 10.0, 0.0, 3.0])[:, None]
    matrix = quantize.quantize_rows(weight)
    assert matrix.values.dtype == torch.int8 and matrix.values.shape == (6, 50)
    assert matrix.scales.shape == (6,) and matrix.scales[4] == 0  # an all-zero row stays zero
    assert matrix.values.abs().amax(dim=1).tolist() == [127, 127, 127, 127, 0, 127]  # each row's range used
    error = (matrix.dequantized() - weight).abs()
    assert bool((error <= matrix.scales[:, None] / 2 + 1e-6 * weight.abs()).all())  # half a step, and fp32 rounding
    assert matrix.nbytes == 6 * 50 + 6 * 4


def test_every_matrix_and_only_the_matrices_are_quantized():
    model = trained_looking(ODD)
    reference, int8 = quantize.with_weights(model, "int8")
    assert sorted(int8) == sorted(["wte.weight"] + [f"h.{i}.{name}" for i in range(ODD.n_layer) for name in (
        "attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")])
    before, after = dict(model.named_parameters()), dict(reference.named_parameters())
    for name, p in before.items():
        if name in int8:
            assert torch.equal(after[name], int8[name].dequantized()) and not torch.equal(after[name], p)
        else:  # biases, layer norms and the position table stay exact
            assert torch.equal(after[name], p)
    assert quantize.with_weights(model, "fp32") == (model, None)
    with pytest.raises(ValueError, match="one of fp32, int8"):
        quantize.with_weights(model, "int4")


def test_a_model_is_quantized_once_until_its_weights_change():
    model = trained_looking(ODD)
    first = quantize.with_weights(model, "int8")
    again = quantize.with_weights(model, "int8")
    assert again[0] is first[0] and again[1] is first[1]
    with torch.no_grad():
        dict(first[0].named_parameters())["h.0.mlp.c_fc.weight"].zero_()  # a caller's change to the copy
    assert quantize.with_weights(model, "int8")[0] is not first[0]  # is not handed out again
    first = quantize.with_weights(model, "int8")
    with torch.no_grad():
        model.h[0].mlp.c_fc.weight.mul_(2)  # in place, as an optimiser step
    changed, int8 = quantize.with_weights(model, "int8")
    assert changed is not first[0]
    assert torch.equal(int8["h.0.mlp.c_fc.weight"].dequantized(), dict(changed.named_parameters())["h.0.mlp.c_fc.weight"])
    assert torch.equal(int8["h.0.mlp.c_fc.weight"].scales, first[1]["h.0.mlp.c_fc.weight"].scales * 2)
    model.h[1].attn.c_proj = torch.nn.Linear(ODD.n_embd, ODD.n_embd)  # a parameter replaced
    assert quantize.with_weights(model, "int8")[0] is not changed


@pytest.mark.parametrize("config", [ODD, EVEN, SIXTEEN], ids=["odd-sizes", "vector-sizes", "half-vectors"])
def test_the_int8_step_gives_the_dequantized_model_s_logits(config):
    reference, int8 = quantize.with_weights(trained_looking(config), "int8")
    prompt = [3, 1, 4, 1, 5]
    torch_cache, fused_cache = after_prompt(reference, prompt), after_prompt(reference, prompt)
    step = fused.decoder(reference, fused_cache, int8)
    token = 9
    with torch.inference_mode():
        for pos in range(len(prompt), config.n_ctx):
            expected = reference.decode(torch.tensor([[token]]), torch_cache, pos)
            got = step(token, pos)
            # The row's scale is applied to the sum, not to each weight: rounding apart, the same numbers.
            assert torch.allclose(got, expected, atol=1e-4, rtol=1e-5), (pos, (got - expected).abs().max())
            token = int(expected.argmax())
    for mine, theirs in zip(fused_cache, torch_cache, strict=True):
        assert torch.allclose(mine, theirs, atol=1e-4, rtol=1e-5)


def test_the_int8_step_reads_the_int8_values_not_the_fp32_matrices():
    model = trained_looking(EVEN)
    reference, int8 = quantize.with_weights(model, "int8")
    prompted = after_prompt(reference, [1, 2])
    from_int8 = fused.decoder(reference, [kv.clone() for kv in prompted], int8)(7, 2)
    with torch.no_grad():
        for name, p in reference.named_parameters():
            if name in int8:
                p.zero_()  # the fp32 copies of the matrices: not read when int8 values are given
    assert torch.equal(fused.decoder(reference, [kv.clone() for kv in prompted], int8)(7, 2), from_int8)
    from_fp32 = fused.decoder(model, [kv.clone() for kv in after_prompt(model, [1, 2])])(7, 2)
    assert not torch.equal(from_int8, from_fp32)
    assert torch.allclose(from_int8, from_fp32, atol=0.05 * float(from_fp32.abs().max()))  # close to fp32


def test_int8_logits_are_bitwise_the_same_whatever_the_number_of_threads():
    reference, int8 = quantize.with_weights(trained_looking(ODD), "int8")
    prompted = after_prompt(reference, [1, 2])
    threads, results = torch.get_num_threads(), []
    try:
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            step = fused.decoder(reference, [kv.clone() for kv in prompted], int8)
            results.append(torch.cat([step(7, 2), step(8, 3), step(9, 4)]))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(results[0], results[1]) and torch.equal(results[0], results[2])


def test_int8_weights_of_another_shape_or_type_are_refused():
    model = trained_looking(ODD)
    reference, int8 = quantize.with_weights(model, "int8")
    cache = reference.new_kv_cache(1)
    bad = {**int8, "h.0.mlp.c_fc.weight": quantize.Int8Matrix(int8["h.0.mlp.c_fc.weight"].values.float(),
                                                               int8["h.0.mlp.c_fc.weight"].scales)}
    on_meta = {**int8, "h.1.attn.c_proj.weight": quantize.Int8Matrix(int8["h.1.attn.c_proj.weight"].values,
                                                                   int8["h.1.attn.c_proj.weight"].scales.to("meta"))}
    missing = {k: v for k, v in int8.items() if k != "wte.weight"}
    short = {**int8, "wte.weight": quantize.Int8Matrix(int8["wte.weight"].values, int8["wte.weight"].scales[:-1])}
    for weights, reason in ((bad, "h.0.mlp.c_fc.weight"), (missing, "exactly"), (short, "wte.weight"),
                            (on_meta, "h.1.attn.c_proj.weight")):
        with pytest.raises(ValueError, match=reason):
            fused.FusedDecoder(fused._library(), reference, cache, weights)


def test_int8_sampling_at_batch_1_draws_what_its_torch_path_draws():
    model = trained_looking(ODD)
    kwargs = dict(n_samples=3, batch_size=1, max_new_tokens=20, top_k=10, prompt_tokens=[5, 6], eot_id=None, seed=4)
    got = list(generate(model, **kwargs, weights="int8"))
    assert got == list(generate(model, **kwargs, weights="int8", fused_step=False))
    assert len({tuple(s.tokens) for s in got}) == 3


def test_int8_is_for_cpu_sampling_and_names_its_choices():
    model = trained_looking(ODD)
    kwargs = dict(n_samples=1, batch_size=1, max_new_tokens=2, prompt_tokens=[5], eot_id=None)
    with pytest.raises(ValueError, match="CPU only"):
        list(generate(model, **kwargs, weights="int8", device="meta"))
    for device in ("cpu", "meta"):
        with pytest.raises(ValueError, match="one of fp32, int8"):
            list(generate(model, **kwargs, weights="bf16", device=device))
