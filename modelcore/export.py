"""Weights in the Hugging Face GPT-2 layout (`config.json`, `model.safetensors`, `vocab.json`, `merges.txt`).

Only safetensors are ever read, and each file's header is checked against the hparams before loading.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from .model import GPT, LN_EPS, GPTConfig
from .safetensors_header import (  # noqa: F401  (MAX_HEADER_BYTES, UnsafeWeightsError: modelcore.export's API)
    CONV1D,
    MAX_HEADER_BYTES,
    PICKLE_SUFFIXES,
    PREFIX,
    UnsafeWeightsError,
    check_tensors,
    expected_shapes,
    read_header,
    refuse_pickle_name,
)
from .tokenizer import Tokenizer

CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.safetensors"


def to_hf_state(model: GPT) -> dict[str, Tensor]:
    """modelcore's state dict, renamed and transposed to the HF GPT-2 layout (lm_head tied, so absent)."""
    return {
        PREFIX + name: (t.t() if name.endswith(CONV1D) else t).detach().contiguous()
        for name, t in model.state_dict().items()
    }


def save_safetensors(model: GPT, path: str | os.PathLike[str]) -> None:
    save_file(to_hf_state(model), str(path), metadata={"format": "pt"})


def load_safetensors_checked(path: str | os.PathLike[str], config: GPTConfig) -> dict[str, Tensor]:
    """Validate a safetensors file's header against config, then load it as a modelcore state dict."""
    path = Path(path)
    refuse_pickle_name(path)
    names = check_tensors(path.name, read_header(path), _expected_shapes(config))
    tensors = load_file(str(path))  # safetensors re-checks offsets against the file
    state = {names[raw]: tensors[raw].float() for raw in names}
    for name in state:
        if name.endswith(CONV1D):
            state[name] = state[name].t().contiguous()
    if (lm_head := state.pop("lm_head.weight", None)) is not None and not torch.equal(
        lm_head, state["wte.weight"]
    ):
        raise UnsafeWeightsError(f"{path.name}: lm_head differs from wte; only tied embeddings are supported")
    return state


def _expected_shapes(config: GPTConfig) -> dict[str, tuple[int, ...]]:
    return expected_shapes(
        n_vocab=config.n_vocab, n_ctx=config.n_ctx, n_embd=config.n_embd, n_layer=config.n_layer
    )


def export_hf(model: GPT, tokenizer: Tokenizer, out_dir: str | os.PathLike[str]) -> Path:
    """Write a directory that `GPT2LMHeadModel` / `GPT2TokenizerFast.from_pretrained` load."""
    c = model.config
    if tokenizer.vocab_size != c.n_vocab:
        raise ValueError(f"tokenizer has {tokenizer.vocab_size} tokens but the model n_vocab {c.n_vocab}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    hf_config = {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": c.n_vocab,
        "n_positions": c.n_ctx,
        "n_embd": c.n_embd,
        "n_head": c.n_head,
        "n_layer": c.n_layer,
        "n_inner": None,
        "activation_function": "gelu_new",
        "layer_norm_epsilon": LN_EPS,
        "initializer_range": 0.02,
        "resid_pdrop": c.dropout,
        "embd_pdrop": c.dropout,
        "attn_pdrop": c.dropout,
        "bos_token_id": tokenizer.eot_id,
        "eos_token_id": tokenizer.eot_id,
        "tie_word_embeddings": True,
        "torch_dtype": "float32",
    }
    (out / CONFIG_FILE).write_text(json.dumps(hf_config, indent=2) + "\n")
    save_safetensors(model, out / WEIGHTS_FILE)
    tokenizer.save(out)
    return out


def config_from_hf(hf_config: dict) -> GPTConfig:
    """The GPTConfig of an HF GPT-2 config.json, refusing variants whose maths modelcore does not compute."""
    if hf_config.get("model_type") != "gpt2":
        raise ValueError(f"model_type is {hf_config.get('model_type')!r}, not 'gpt2'")
    n_embd = hf_config["n_embd"]
    variants = {
        "n_inner": (None, 4 * n_embd),
        "activation_function": ("gelu_new", "gelu_pytorch_tanh"),
        "layer_norm_epsilon": (LN_EPS,),
        "tie_word_embeddings": (True,),
        "scale_attn_weights": (True,),
        "scale_attn_by_inverse_layer_idx": (False,),
        "add_cross_attention": (False,),
    }
    for key, allowed in variants.items():
        if key in hf_config and hf_config[key] not in allowed:
            raise ValueError(f"unsupported GPT-2 variant: {key} = {hf_config[key]!r} (supported: {allowed})")
    return GPTConfig(
        n_vocab=hf_config["vocab_size"],
        n_ctx=hf_config["n_positions"],
        n_embd=n_embd,
        n_head=hf_config["n_head"],
        n_layer=hf_config["n_layer"],
    ).validate()


def import_hf(directory: str | os.PathLike[str]) -> tuple[GPT, Tokenizer, GPTConfig]:
    """Load any GPT-2 checkpoint in the HF layout (single `model.safetensors`; pickles are refused)."""
    d = Path(directory)
    weights = d / WEIGHTS_FILE
    if not weights.is_file():
        pickles = sorted(p.name for p in d.glob("*") if p.suffix in PICKLE_SUFFIXES)
        hint = f"; found {pickles}, which are pickles and are never loaded" if pickles else ""
        raise UnsafeWeightsError(f"{d} has no {WEIGHTS_FILE}{hint}")
    config = config_from_hf(json.loads((d / CONFIG_FILE).read_text()))
    tokenizer = Tokenizer.load(d)
    if tokenizer.vocab_size != config.n_vocab:
        raise ValueError(
            f"tokenizer has {tokenizer.vocab_size} tokens but config.json vocab_size {config.n_vocab}"
        )
    return load_model(weights, config), tokenizer, config


def load_model(path: str | os.PathLike[str], config: GPTConfig) -> GPT:
    """A GPT (in eval mode) holding the weights of a checked safetensors file."""
    with torch.device("meta"):  # no throwaway initialisation: every tensor is assigned from the file
        model = GPT(config)
    model.load_state_dict(load_safetensors_checked(path, config), assign=True)
    return model.eval()
