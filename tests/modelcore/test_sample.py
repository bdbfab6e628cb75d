import itertools
import math

import pytest
import torch

from modelcore import kernels
from modelcore.model import GPT
from modelcore.sample import Sample, draw, generate, next_tokens, top_k_logits, top_p_logits
from tests.kernel_calls import count_kernel_calls

INF = float("inf")


def sample_without_cache(model, prompt, rows, max_new_tokens, seed, temperature=1.0, top_k=0, top_p=1.0):
    """The reference: recompute the whole sequence every step, drawing with the same generator."""
    generator = torch.Generator().manual_seed(seed)
    seq = torch.tensor([prompt] * rows)
    with torch.no_grad():
        for _ in range(max_new_tokens):
            token = next_tokens(model(seq)[0][:, -1], temperature, top_k, top_p, generator)
            seq = torch.cat([seq, token[:, None]], dim=1)
    return seq[:, len(prompt) :].tolist()


def expected_samples(rows: list[list[int]], eot_id: int) -> list[Sample]:
    cut = [row.index(eot_id) if eot_id in row else len(row) for row in rows]
    return [Sample(row[:n], n < len(row), n) for row, n in zip(rows, cut, strict=True)]


def rigged(config, favourite: int) -> GPT:
    """A model whose most likely next token is always `favourite` (all weights zero but two)."""
    model = GPT(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.ln_f.bias[0] = 1.0  # every final hidden state is e_0 ...
        model.wte.weight[favourite, 0] = 1.0  # ... so only this token's logit is not 0
    return model


def test_kv_cache_greedy_decoding_equals_greedy_decoding_without_cache(model, tokenizer):
    prompt = tokenizer.encode("To be, or not")
    got = generate(model, n_samples=3, batch_size=3, max_new_tokens=40, temperature=0.0, prompt_tokens=prompt,
                   eot_id=tokenizer.eot_id)  # fmt: skip
    rows = sample_without_cache(model, prompt, 3, 40, seed=0, temperature=0.0)
    assert list(got) == expected_samples(rows, tokenizer.eot_id)


@pytest.mark.parametrize(("temperature", "top_k", "top_p"), [(1.0, 0, 1.0), (1.5, 40, 1.0), (0.8, 0, 0.9)])
def test_kv_cache_sampling_equals_sampling_without_cache_row_by_row(
    model, tokenizer, temperature, top_k, top_p
):
    # A hot, small-vocabulary model ends some rows early: ended and length are checked too.
    got = list(generate(model, n_samples=16, batch_size=16, max_new_tokens=50, temperature=temperature,
                        top_k=top_k, top_p=top_p, seed=7, eot_id=tokenizer.eot_id))  # fmt: skip
    rows = sample_without_cache(model, [tokenizer.eot_id], 16, 50, 7, temperature, top_k, top_p)
    assert got == expected_samples(rows, tokenizer.eot_id)
    assert 0 < sum(s.ended for s in got) < len(got)  # both kinds of row occur, so both are compared


def test_seeded_sampling_repeats_and_other_seeds_differ(model, tokenizer):
    def run(seed):
        return list(generate(model, n_samples=5, batch_size=2, max_new_tokens=30, top_k=40, seed=seed,
                             eot_id=tokenizer.eot_id))  # fmt: skip

    first = run(seed=1)
    assert len(first) == 5
    assert run(seed=1) == first
    assert run(seed=2) != first


def test_unconditional_sampling_starts_from_end_of_text(model, tokenizer):
    def run(prompt):
        return list(generate(model, n_samples=2, batch_size=2, max_new_tokens=20, seed=3, prompt_tokens=prompt,
                             eot_id=tokenizer.eot_id))  # fmt: skip

    assert run(None) == run([tokenizer.eot_id])


def test_a_row_that_produces_end_of_text_is_ended_and_stops_there(config, tokenizer):
    always_eot = rigged(config, tokenizer.eot_id)
    samples = list(generate(always_eot, n_samples=3, batch_size=2, max_new_tokens=10, temperature=0.0,
                            eot_id=tokenizer.eot_id))  # fmt: skip
    assert samples == [Sample(tokens=[], ended=True, length=0)] * 3


def test_a_row_that_reaches_the_length_cap_is_not_ended(config, tokenizer):
    never_eot = rigged(config, 5)
    samples = list(generate(never_eot, n_samples=2, batch_size=2, max_new_tokens=12, temperature=0.0,
                            eot_id=tokenizer.eot_id))  # fmt: skip
    assert samples == [Sample(tokens=[5] * 12, ended=False, length=12)] * 2


def test_without_eot_id_every_row_gets_exactly_max_new_tokens(config):
    always_zero = rigged(config, 0)
    [sample] = generate(always_zero, n_samples=1, batch_size=1, max_new_tokens=9, temperature=0.0,
                        prompt_tokens=[1, 2], eot_id=None)  # fmt: skip
    assert sample == Sample(tokens=[0] * 9, ended=False, length=9)


def test_lengths_beyond_n_ctx_are_refused_and_exactly_n_ctx_is_allowed(model, config, tokenizer):
    with pytest.raises(ValueError, match=f"exceeds the model's context of n_ctx = {config.n_ctx}"):
        next(generate(model, n_samples=1, batch_size=1, max_new_tokens=config.n_ctx, eot_id=tokenizer.eot_id))
    with pytest.raises(ValueError, match="n_ctx"):
        next(generate(model, n_samples=1, batch_size=1, max_new_tokens=config.n_ctx - 2, prompt_tokens=[1, 2, 3],
                      eot_id=None))  # fmt: skip
    [sample] = generate(rigged(config, 5), n_samples=1, batch_size=1, max_new_tokens=config.n_ctx - 1,
                        temperature=0.0, eot_id=tokenizer.eot_id)  # fmt: skip
    assert sample.length == config.n_ctx - 1


def test_samples_come_batch_by_batch_however_many_are_asked(model, tokenizer):
    # A billion samples would not fit in memory: the first ones arrive after one batch of work.
    samples = generate(model, n_samples=10**9, batch_size=2, max_new_tokens=5, eot_id=tokenizer.eot_id)
    assert len(list(itertools.islice(samples, 3))) == 3
    assert not torch.is_inference_mode_enabled()  # between samples, the caller's own mode is back


def test_top_k_keeps_the_k_largest_logits_and_ties_with_the_kth():
    logits = torch.tensor([[1.0, 3.0, 2.0, 5.0, 4.0], [1.0, 3.0, 3.0, 0.0, 2.0]])
    assert top_k_logits(logits, 2).tolist() == [[-INF, -INF, -INF, 5.0, 4.0], [-INF, 3.0, 3.0, -INF, -INF]]
    assert top_k_logits(logits[1:], 1).tolist() == [[-INF, 3.0, 3.0, -INF, -INF]]  # as openai/gpt-2
    assert torch.equal(top_k_logits(logits, 0), logits)


def test_top_p_keeps_the_prefix_whose_cumulative_probability_stays_within_p():
    logits = torch.tensor([[0.15, 0.5, 0.05, 0.3]]).log()
    kept = {p: (top_p_logits(logits, p) > -INF).tolist()[0] for p in (0.9, 0.96, 0.4, 1.0)}
    assert kept[0.9] == [False, True, False, True]  # 0.5 + 0.3 <= 0.9; adding 0.15 would cross it
    assert kept[0.96] == [True, True, False, True]
    assert kept[0.4] == [False, True, False, False]  # the most likely token always stays
    assert kept[1.0] == [True, True, True, True]


def test_top_k_applies_before_top_p(model):
    logits = torch.tensor([[0.15, 0.5, 0.05, 0.3]]).log()
    # Within the top 2 the probabilities renormalise to 0.625 / 0.375, so p = 0.7 keeps only one.
    generator = torch.Generator().manual_seed(0)
    draws = {next_tokens(logits, 1.0, 2, 0.7, generator).item() for _ in range(200)}
    assert draws == {1}


def test_top_k_sampling_draws_tokens_tied_with_the_kth_and_only_the_top_k():
    generator = torch.Generator().manual_seed(0)
    untied = torch.tensor([[0.0, 2.0, 1.0, 1.5, -1.0]]).expand(4000, -1)
    counts = torch.bincount(next_tokens(untied, 1.0, 2, 1.0, generator), minlength=5)
    assert counts[[0, 2, 4]].sum() == 0 and counts[1] > counts[3] > 0
    expected = torch.softmax(torch.tensor([2.0, 1.5]), dim=0)[0].item()  # 0.62 for the larger of the two
    assert counts[1].item() / 4000 == pytest.approx(expected, abs=0.03)
    tied = torch.tensor([[0.0, 2.0, 1.0, 1.0, -1.0]]).expand(4000, -1)  # the 2nd largest value twice
    counts = torch.bincount(next_tokens(tied, 1.0, 2, 1.0, generator), minlength=5)
    assert counts[[0, 4]].sum() == 0 and counts[2] > 0 and counts[3] > 0  # both tied tokens stay drawable


def test_top_k_in_one_native_pass_per_row_gives_torch_s_values_and_indices(monkeypatch):
    from modelcore import native

    assert native.unavailable_reason() is None  # the native pass must be the one tested here
    torch.manual_seed(0)
    for rows in (torch.randn(1, 50_257) * 3, torch.randn(25, 8192) * 3, torch.randn(3, 77),
                 torch.arange(64.0)[None].flip(1)):
        for k in {1, 5, 40, min(native.TOP_K_MAX, rows.shape[1] - 1)}:
            values, indices = native.top_k(rows, k)
            expected = torch.topk(rows, k)
            assert torch.equal(values, expected.values) and torch.equal(indices, expected.indices)
    for declined in (torch.tensor([[0.0, 2.0, 1.0, 1.0, -1.0]]),  # the k-th twice: torch's path keeps both
                     torch.tensor([[3.0, 3.0, 1.0]]),  # equal values inside the k: torch orders them
                     torch.tensor([[0.0, float("nan"), 1.0]]), torch.randn(1, 10).double(),
                     torch.randn(4, 10).t().contiguous().t(),  # rows that are not contiguous
                     torch.cat([torch.randn(3, 6), torch.tensor([[0.0, 2.0, 1.0, 1.0, -1.0, -2.0]])]),  # one row tied
                     torch.cat([torch.randn(3, 6), torch.tensor([[0.0, float("nan"), 1.0, 0.5, 0.2, 0.1]])])):
        assert native.top_k(declined, 2) is None
    assert native.top_k(torch.randn(1, 1000), native.TOP_K_MAX + 1) is None  # a large k: torch's
    # Sampling draws the same tokens with the native pass and without it, at batch 1 and at a shard's batch.
    for logits in (torch.randn(1, 5000) * 2, torch.randn(25, 5000) * 2):
        draws = [next_tokens(logits, 0.9, 40, 0.95, torch.Generator().manual_seed(s)) for s in range(20)]
        with monkeypatch.context() as patched:
            patched.setattr(native, "top_k", lambda logits, k: None)
            assert all(torch.equal(a, next_tokens(logits, 0.9, 40, 0.95, torch.Generator().manual_seed(s)))
                       for s, a in enumerate(draws))
        assert len({int(t[0]) for t in draws}) > 3  # the draws differ, so the comparison says something


def test_draws_follow_the_distribution_and_never_pick_impossible_tokens():
    probs = torch.tensor([0.0, 0.1, 0.0, 0.6, 0.3, 0.0])
    generator = torch.Generator().manual_seed(0)
    picks = draw(probs.expand(50_000, -1), generator)
    frequencies = torch.bincount(picks, minlength=6) / 50_000
    assert frequencies[[0, 2, 5]].sum() == 0
    # 50,000 draws: a standard error under 0.0022, so 0.01 is a 4.5-sigma bound.
    assert torch.allclose(frequencies, probs, atol=0.01)
    assert math.isclose(frequencies.sum().item(), 1.0)


def test_invalid_sampling_settings_are_refused(model, tokenizer):
    for bad in ({"temperature": -1.0}, {"top_k": -1}, {"top_p": 0.0}, {"top_p": 1.5}, {"n_samples": 0}):
        kwargs = {"n_samples": 1, "batch_size": 1, "max_new_tokens": 4, "eot_id": tokenizer.eot_id, **bad}
        with pytest.raises(ValueError):
            next(generate(model, **kwargs))


@pytest.mark.parametrize("layout", sorted(kernels.LAYOUTS))
def test_a_given_layout_is_the_one_sampling_runs_on_and_samples_agree(model, tokenizer, monkeypatch, layout):
    others = [name for name in kernels.LAYOUTS if name != layout]
    monkeypatch.setattr(kernels, "_fastest", {})
    monkeypatch.setattr(kernels, "_pass_times", lambda weights, b: {name: float(name == layout) for name in kernels.LAYOUTS})
    timed = list(generate(model, n_samples=4, batch_size=2, max_new_tokens=20, temperature=0.0,
                          eot_id=tokenizer.eot_id, fused_step=False))  # fmt: skip
    calls = count_kernel_calls(monkeypatch)
    fixed = list(generate(model, n_samples=4, batch_size=2, max_new_tokens=20, temperature=0.0,
                          eot_id=tokenizer.eot_id, layout=layout, fused_step=False))  # fmt: skip
    assert calls[layout] > 0 and all(calls[other] == 0 for other in others)  # timing preferred the others
    assert fixed == timed  # greedy: no token sits near a tie in these logits
    with pytest.raises(ValueError, match="unknown layout"):
        list(generate(model, n_samples=1, batch_size=1, max_new_tokens=2, eot_id=tokenizer.eot_id, layout="x"))
