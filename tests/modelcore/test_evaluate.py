import math

import pytest
import torch

from modelcore.evaluate import evaluate_text, unigram_loss, window_spans
from modelcore.model import GPT

from .conftest import TEXT, corpus


def uniform(config) -> GPT:
    """A model whose logits are all zero: every token has probability 1 / n_vocab."""
    model = GPT(config).eval()
    with torch.no_grad():
        model.wte.weight.zero_()
    return model


def test_a_uniform_model_has_perplexity_equal_to_the_vocabulary_size(config, tokenizer):
    report = evaluate_text(uniform(config), tokenizer, TEXT[:3000], stride=32, batch_size=4)
    assert report.perplexity == pytest.approx(config.n_vocab, rel=1e-5)
    assert report.tokens == len(tokenizer.encode(TEXT[:3000]))
    assert report.bytes == len(TEXT[:3000].encode())
    assert report.bits_per_byte == pytest.approx(report.tokens * math.log2(config.n_vocab) / report.bytes)


def test_every_token_is_scored_once_with_at_least_n_ctx_minus_stride_of_context():
    n_tokens, n_ctx, stride = 1000, 64, 24
    scored = []
    for begin, end, first in window_spans(n_tokens, n_ctx, stride):
        assert end - begin <= n_ctx
        new = range(max(first, begin), end)
        assert begin == 0 or all(t - begin >= n_ctx - stride for t in new)
        scored += new
    assert scored == list(range(n_tokens))


def test_the_sliding_window_equals_one_pass_when_the_text_fits(model, tokenizer):
    text = "To be, or not to be, that is the question."
    ids = [tokenizer.eot_id, *tokenizer.encode(text)]
    x, y = torch.tensor([ids[:-1]]), torch.tensor([ids[1:]])
    with torch.no_grad():
        expected = model(x, y)[1].item()
    assert evaluate_text(model, tokenizer, text, stride=8, batch_size=3).loss == pytest.approx(
        expected, rel=1e-5
    )


def test_an_invalid_stride_is_refused(model, tokenizer, config):
    with pytest.raises(ValueError, match="stride"):
        evaluate_text(model, tokenizer, TEXT, stride=config.n_ctx + 1, batch_size=2)


def test_unigram_loss_of_uniform_counts_is_log_vocabulary_size():
    assert unigram_loss(list(range(10)) * 5, [1, 2, 3], 10) == pytest.approx(math.log(10))
    assert unigram_loss([0] * 98, [0], 2) == pytest.approx(-math.log(99 / 100))  # add-one smoothing


def test_evaluates_the_wikitext_2_test_split(model, tokenizer):
    text = corpus("wikitext-2/test.txt").read_text(encoding="utf-8")[:20_000]
    report = evaluate_text(model, tokenizer, text, stride=32, batch_size=8)
    # An untrained model is close to uniform over its 320 tokens, and bytes are fewer than tokens x 8 bits.
    assert report.perplexity == pytest.approx(tokenizer.vocab_size, rel=0.1)
    assert 0 < report.bits_per_byte < report.tokens * 9 / report.bytes
