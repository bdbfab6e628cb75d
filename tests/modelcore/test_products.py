"""Training's bf16 products in their timed forms (modelcore/products.py) against torch's own."""

import time

import pytest
import torch

from modelcore import products, training_ops
from modelcore.model import GPT


def _operands(rows: int, inner: int, cols: int, layout: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """a [rows, inner] and b [inner, cols] in bf16, each stored as the layout says ("t": a transposed view)."""
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(rows, inner, generator=gen).bfloat16()
    b = torch.randn(inner, cols, generator=gen).bfloat16()
    if layout[0] == "t":
        a = a.t().contiguous().t()
    if layout[1] == "t":
        b = b.t().contiguous().t()
    return a, b


def _within_bf16_rounding(got: torch.Tensor, a: torch.Tensor, b: torch.Tensor, bias=None) -> None:
    exact = a.double() @ b.double() + (0 if bias is None else bias.double())
    # fp32 accumulation rounded once to bf16: within a unit in the last place (2^-7 relative), plus the
    # sum's rounding for entries that nearly cancel.
    scale = (a.double().abs() @ b.double().abs()).max()
    assert got.dtype == torch.bfloat16
    assert ((got.double() - exact).abs() <= 2**-7 * exact.abs() + 1e-5 * scale).all()


@pytest.mark.parametrize("blocks", products.ROW_BLOCKS + (3,))
@pytest.mark.parametrize("layout", ["nn", "tn", "nt"])
@pytest.mark.parametrize("with_bias", [False, True])
def test_every_form_computes_the_product(blocks, layout, with_bias):
    a, b = _operands(37, 96, 48, layout)  # 37 rows: blocks of unequal size
    bias = torch.randn(48).bfloat16() if with_bias else None
    out = torch.full((37, 48), float("nan"), dtype=torch.bfloat16)
    got = products._product(a, b, bias, out, blocks)
    assert got is out
    _within_bf16_rounding(got, a, b, bias)
    whole = torch.mm(a, b) if bias is None else torch.addmm(bias, a, b)
    # Against torch's own product: the same bf16 values, or the neighbouring one where a kernel summed in
    # another order.
    assert ((got.float() - whole.float()).abs() <= 2**-7 * whole.float().abs() + 1e-6).all()


def test_mm_gives_torch_s_product_and_keeps_the_form_chosen_per_shape_strides_bias_and_threads(monkeypatch):
    monkeypatch.setattr(products, "_chosen", {})
    monkeypatch.setattr(products, "MIN_TIMED_MACS", 64 * 80 * 32)
    a, b = _operands(64, 80, 32, "nn")
    bias = torch.randn(32).bfloat16()
    a_t, _ = _operands(64, 80, 32, "tn")
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        _within_bf16_rounding(products.mm(a, b), a, b)
        _within_bf16_rounding(products.mm(a, b, bias=bias), a, b, bias)
        out = torch.empty(64, 32, dtype=torch.bfloat16)
        assert products.mm(a, b, out=out) is out
        _within_bf16_rounding(out, a, b)
        _within_bf16_rounding(products.mm(a_t, b), a_t, b)
        torch.set_num_threads(1)
        products.mm(a, b)
    finally:
        torch.set_num_threads(threads)
    keys = products.chosen()
    assert len(keys) == 4  # the same product again (with out) was not timed again
    assert {key[4] for key in keys} == {False, True} and {key[5] for key in keys} == {1, 2}
    assert {key[1] for key in keys} == {a.stride(), a_t.stride()}
    assert set(keys.values()) <= set(products.ROW_BLOCKS)


def test_fastest_takes_the_quickest_run_timing_each_in_turn():
    calls = []

    def run(name, seconds):
        def go():
            calls.append(name)
            time.sleep(seconds)
        return go

    runs = [run(1, 0.03), run(2, 0.005), run(4, 0.015)]
    assert products.fastest(runs, [1, 2, 4]) == 2
    # Each warmed up once, then timed TIMED_RUNS times, alternated.
    assert calls == [1, 2, 4] * (1 + products.TIMED_RUNS)
    # Within the margin the first run's name stands: 20 ms is not under half of 30.
    assert products.fastest([run(1, 0.03), run(2, 0.02)], [1, 2], margin=0.5) == 1
    assert products.fastest([run(1, 0.08), run(2, 0.01)], [1, 2], margin=0.5) == 2  # wide apart: a busy CI


def test_a_product_in_a_graph_is_torch_s_and_differentiable():
    a, b = _operands(8, 6, 4, "nn")
    a.requires_grad_()
    out = torch.zeros(8, 4, dtype=torch.bfloat16)
    product = products.mm(a, b, out=out)
    assert product is out and torch.equal(out, torch.mm(a, b))
    product.float().sum().backward()
    assert torch.equal(a.grad, torch.ones(8, 4, dtype=torch.bfloat16) @ b.t())


def _bf16_step(model: GPT, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, loss = model(x, y)
    loss.backward()
    return loss.detach(), {name: p.grad.clone() for name, p in model.named_parameters()}


def test_training_s_layers_give_the_same_step_with_their_products_in_blocks(config, monkeypatch):
    # Every product of a bf16 step (each linear's three, the tied output layer's, its weight gradient's vocabulary
    # blocks, into kept memory) in 4 row blocks against whole, as the timing would choose at real sizes.
    monkeypatch.setattr(products, "MIN_TIMED_MACS", 0)
    monkeypatch.setattr(training_ops, "VOCAB_BLOCK_ROWS", 7)
    torch.manual_seed(0)
    model = GPT(config)
    x, y = torch.randint(0, config.n_vocab, (3, 16)), torch.randint(0, config.n_vocab, (3, 16))
    results = {}
    for blocks in (1, 4):
        monkeypatch.setattr(products, "ROW_BLOCKS", (blocks,))
        monkeypatch.setattr(products, "_chosen", {})
        results[blocks] = [_bf16_step(model, x, y) for _ in range(2)]  # the second on the kept memory
        assert set(products.chosen().values()) == {blocks}
    for (loss_whole, grads_whole), (loss_blocks, grads_blocks) in zip(results[1], results[4], strict=True):
        torch.testing.assert_close(loss_blocks, loss_whole, rtol=1e-3, atol=0)
        for name, grad in grads_whole.items():
            torch.testing.assert_close(grads_blocks[name], grad, rtol=0.05, atol=0.02 * grad.abs().max().item(),
                                       msg=name)


def test_other_dtypes_small_products_and_deterministic_mode_take_torch_s_whole_product_untimed(monkeypatch):
    monkeypatch.setattr(products, "_chosen", {})
    a, b = torch.randn(16, 24), torch.randn(24, 8)
    monkeypatch.setattr(products, "MIN_TIMED_MACS", 16 * 24 * 8)
    assert torch.equal(products.mm(a, b), torch.mm(a, b))  # fp32: torch's product, bit for bit
    assert torch.equal(products.mm(a, b, bias=torch.ones(8)), torch.addmm(torch.ones(8), a, b))
    a16, b16 = a.bfloat16(), b.bfloat16()
    monkeypatch.setattr(products, "MIN_TIMED_MACS", 16 * 24 * 8 + 1)
    assert torch.equal(products.mm(a16, b16), torch.mm(a16, b16))
    assert products.chosen() == {}
    monkeypatch.setattr(products, "MIN_TIMED_MACS", 16 * 24 * 8)
    torch.use_deterministic_algorithms(True)
    try:
        assert torch.equal(products.mm(a16, b16), torch.mm(a16, b16))
    finally:
        torch.use_deterministic_algorithms(False)
    assert products.chosen() == {}  # nothing timed, nothing remembered


@pytest.mark.parametrize("blocks", products.ROW_BLOCKS)
def test_a_product_without_rows_is_empty_in_every_form(blocks):
    a, b = torch.empty(0, 8, dtype=torch.bfloat16), torch.ones(8, 4, dtype=torch.bfloat16)
    assert products._product(a, b, torch.ones(4, dtype=torch.bfloat16), a.new_empty(0, 4), blocks).shape == (0, 4)
