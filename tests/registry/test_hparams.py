import pytest
from django.core.exceptions import ValidationError

from registry.hparams import HParams, hparams_validate, parameter_count

GPT2_124M = {"n_vocab": 50257, "n_ctx": 1024, "n_embd": 768, "n_head": 12, "n_layer": 12}


def test_parameter_count_of_gpt2_124m_is_124_439_808():
    assert parameter_count(hparams_validate(GPT2_124M)) == 124_439_808


def test_parameter_count_of_gpt2_355m_matches_the_published_checkpoint():
    hp = HParams(n_vocab=50257, n_ctx=1024, n_embd=1024, n_head=16, n_layer=24)
    assert parameter_count(hp) == 354_823_168


def test_embedding_width_must_divide_into_heads():
    with pytest.raises(ValidationError) as excinfo:
        hparams_validate({**GPT2_124M, "n_embd": 100})
    assert "divisible" in str(excinfo.value.message_dict["n_head"])


@pytest.mark.parametrize("bad", [0, -1, 1.5, "12", True, None])
def test_non_positive_or_non_integer_values_are_named(bad):
    with pytest.raises(ValidationError) as excinfo:
        hparams_validate({**GPT2_124M, "n_layer": bad})
    assert "n_layer" in excinfo.value.message_dict


def test_unknown_and_missing_hyperparameters_are_reported_together():
    values = {k: v for k, v in GPT2_124M.items() if k != "n_ctx"} | {"n_positions": 1024}
    with pytest.raises(ValidationError) as excinfo:
        hparams_validate(values)
    assert set(excinfo.value.message_dict) == {"n_ctx", "n_positions"}
