import json
import pickle
import struct

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

from modelcore.export import (
    UnsafeWeightsError,
    config_from_hf,
    export_hf,
    import_hf,
    load_safetensors_checked,
    to_hf_state,
)
from modelcore.model import GPTConfig

from .conftest import TEXT, corpus

transformers = pytest.importorskip("transformers")  # a test-only dependency


@pytest.fixture
def trained_looking(model):
    """The tiny model with every tensor perturbed, so that no bias or gain sits at its initial 0 or 1."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    return model


@pytest.fixture
def exported(trained_looking, tokenizer, tmp_path):
    return export_hf(trained_looking, tokenizer, tmp_path / "export")


def test_transformers_loads_the_export_with_the_same_logits(trained_looking, exported, config):
    reference = transformers.GPT2LMHeadModel.from_pretrained(exported).eval()
    idx = torch.randint(0, config.n_vocab, (3, config.n_ctx))
    with torch.no_grad():
        ours, theirs = trained_looking(idx)[0], reference(idx).logits
    assert (ours - theirs).abs().max().item() < 1e-4
    assert ours.abs().max().item() > 1.0  # a real comparison, not of two near-zero tensors


@settings(max_examples=200, deadline=None)
@given(text=st.text())
def test_transformers_tokenizes_like_us(tokenizer, hf_tokenizer, text):
    assert hf_tokenizer.encode(text) == tokenizer.encode(text)


@pytest.fixture(scope="module")
def hf_tokenizer(tokenizer, tmp_path_factory):
    directory = tmp_path_factory.mktemp("tokenizer")
    tokenizer.save(directory)
    return transformers.GPT2TokenizerFast.from_pretrained(directory)


def test_transformers_tokenizes_a_real_corpus_like_us(tokenizer, hf_tokenizer):
    text = corpus("tinyshakespeare/input.txt").read_text(encoding="utf-8")[:50_000] + TEXT
    assert hf_tokenizer.encode(text) == tokenizer.encode(text)
    assert hf_tokenizer.eos_token_id == tokenizer.eot_id


def test_import_returns_the_exported_model_and_tokenizer(trained_looking, exported, tokenizer, config):
    model, loaded_tokenizer, loaded_config = import_hf(exported)
    assert loaded_config == config
    for name, tensor in trained_looking.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor), name
    assert loaded_tokenizer.encode(TEXT) == tokenizer.encode(TEXT)


def test_a_checkpoint_saved_by_transformers_imports_with_the_same_logits(tokenizer, tmp_path):
    hf_config = transformers.GPT2Config(vocab_size=tokenizer.vocab_size, n_positions=32, n_embd=48, n_head=4,
                                        n_layer=2)  # fmt: skip
    torch.manual_seed(2)
    reference = transformers.GPT2LMHeadModel(hf_config).eval()
    reference.save_pretrained(tmp_path)
    tokenizer.save(tmp_path)
    model, _, config = import_hf(tmp_path)
    assert config == GPTConfig(tokenizer.vocab_size, 32, 48, 4, 2)
    idx = torch.randint(0, tokenizer.vocab_size, (2, 32))
    with torch.no_grad():
        assert (model(idx)[0] - reference(idx).logits).abs().max().item() < 1e-4


def test_a_pickle_is_refused_without_being_unpickled(exported, config, tmp_path):
    sentinel = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(sentinel), "w"))

    path = exported / "model.safetensors"
    path.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(UnsafeWeightsError, match="pickle"):
        load_safetensors_checked(path, config)
    torch.save({"wte.weight": torch.zeros(3)}, path)  # torch.save's zip archive
    with pytest.raises(UnsafeWeightsError, match="pickle"):
        import_hf(exported)
    assert not sentinel.exists()


def test_bin_files_are_refused_by_name(exported, config):
    (exported / "model.safetensors").rename(exported / "pytorch_model.bin")
    with pytest.raises(UnsafeWeightsError, match="only .safetensors"):
        load_safetensors_checked(exported / "pytorch_model.bin", config)
    with pytest.raises(UnsafeWeightsError, match=r"pytorch_model\.bin.*never loaded"):
        import_hf(exported)


@pytest.mark.parametrize("declared", [2**40, 10**6])
def test_an_oversized_or_truncated_header_is_refused(exported, config, declared):
    path = exported / "model.safetensors"
    path.write_bytes(struct.pack("<Q", declared) + b'{"a": 1}')
    with pytest.raises(UnsafeWeightsError, match="header of"):
        load_safetensors_checked(path, config)


def test_tensors_of_the_wrong_shape_are_refused(exported, config):
    wider = GPTConfig(**{**config.to_hparams(), "n_embd": 64})
    with pytest.raises(UnsafeWeightsError, match=r"expected a float \["):
        load_safetensors_checked(exported / "model.safetensors", wider)


def test_unexpected_missing_or_untied_tensors_are_refused(exported, config):
    path = exported / "model.safetensors"
    tensors = load_file(path)
    save_file({**tensors, "transformer.h.9.mlp.c_fc.weight": torch.zeros(2)}, path)
    with pytest.raises(UnsafeWeightsError, match="unexpected tensor"):
        load_safetensors_checked(path, config)
    save_file({k: v for k, v in tensors.items() if not k.endswith("ln_f.bias")}, path)
    with pytest.raises(UnsafeWeightsError, match="missing tensors"):
        load_safetensors_checked(path, config)
    wte = tensors["transformer.wte.weight"]
    save_file({**tensors, "lm_head.weight": wte.clone()}, path)
    load_safetensors_checked(path, config)  # an explicit but tied output layer is fine
    save_file({**tensors, "lm_head.weight": wte + 1}, path)
    with pytest.raises(UnsafeWeightsError, match="only tied embeddings"):
        load_safetensors_checked(path, config)


def test_gpt2_variants_with_other_maths_are_refused(exported):
    hf_config = json.loads((exported / "config.json").read_text())
    assert config_from_hf(hf_config).n_layer == 2
    for change in ({"activation_function": "relu"}, {"n_inner": 7}, {"model_type": "llama"}):
        with pytest.raises(ValueError):
            config_from_hf({**hf_config, **change})


def test_the_hf_layout_stores_block_matrices_transposed_as_conv1d(model):
    state, c = to_hf_state(model), model.config.n_embd
    assert state["transformer.h.0.attn.c_attn.weight"].shape == (c, 3 * c)
    for name in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"):
        module = model.get_submodule(f"h.1.{name}")
        assert torch.equal(state[f"transformer.h.1.{name}.weight"], module.weight.t())
        assert torch.equal(state[f"transformer.h.1.{name}.bias"], module.bias)
