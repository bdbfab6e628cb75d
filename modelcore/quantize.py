"""Int8 weight-only copies of a GPT's matrices: the opt-in reduced-precision path (`weights="int8"`).

Each matrix row is stored as int8 with one fp32 scale (its largest magnitude / 127, rounded to nearest), the
vectors (biases, layer norms) and the position table stay fp32, and every product is still computed in fp32:
only the weights read from memory shrink, four times, which is what batch-1 sampling waits on.

The reference path is the same model in torch with each matrix replaced by its dequantized values
(`dequantized`): the native step (modelcore/fused.py) must give its logits, and the evaluation of a
`weights="int8"` job scores that model. The default everywhere stays exact fp32.
"""

from __future__ import annotations

import copy
import weakref
from dataclasses import dataclass

import torch
from torch import Tensor

from .model import GPT

WEIGHTS = ("fp32", "int8")
_MATRICES = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def matrix_names(model: GPT) -> list[str]:
    """The parameters stored as int8: every layer's four matrices and wte (the input and output embedding)."""
    return ["wte.weight", *(f"h.{i}.{name}" for i in range(model.config.n_layer) for name in _MATRICES)]


@dataclass(frozen=True)
class Int8Matrix:
    values: Tensor  # int8 [rows, n]
    scales: Tensor  # fp32 [rows]

    def dequantized(self) -> Tensor:
        return self.values.float() * self.scales[:, None]

    @property
    def nbytes(self) -> int:
        return self.values.numel() + self.scales.numel() * 4


def quantize_rows(weight: Tensor) -> Int8Matrix:
    """Symmetric per-row int8: row r is values[r] * scales[r]; an all-zero row has scale 0."""
    w = weight.detach().float().cpu()
    scales = w.abs().amax(dim=1) / 127.0
    safe = torch.where(scales > 0, scales, torch.ones_like(scales))
    values = torch.round(w / safe[:, None]).clamp_(-127, 127).to(torch.int8)
    return Int8Matrix(values=values.contiguous(), scales=scales.contiguous())


def int8_weights(model: GPT) -> dict[str, Int8Matrix]:
    """The model's matrices as int8, by parameter name."""
    params = dict(model.named_parameters())
    return {name: quantize_rows(params[name]) for name in matrix_names(model)}


def dequantized(model: GPT, weights: dict[str, Int8Matrix]) -> GPT:
    """A copy of the model whose matrices hold exactly the values the int8 weights stand for."""
    copied = copy.deepcopy(model)
    params = dict(copied.named_parameters())
    with torch.no_grad():
        for name, matrix in weights.items():
            params[name].copy_(matrix.dequantized())
    return copied


# Per model, its int8 form while its parameters stay as they were: a worker samples one loaded model shard
# after shard, and quantizing GPT-2 124M's shape takes about a second.
_prepared: weakref.WeakKeyDictionary[GPT, tuple[tuple, tuple, GPT, dict[str, Int8Matrix]]] = weakref.WeakKeyDictionary()


def weights_state(model: GPT) -> tuple:
    # A parameter replaced, moved or changed in place (training, load_state_dict) changes one of these;
    # writes through `p.data` escape them, as they escape autograd.
    return tuple((id(p), p.data_ptr(), p.dtype, p._version) for p in model.parameters())


def with_weights(model: GPT, weights: str) -> tuple[GPT, dict[str, Int8Matrix] | None]:
    """(the model the torch path runs, the int8 matrices or None) for `weights` in WEIGHTS. The int8 form (a
    dequantized fp32 copy and the int8 matrices, 1.25 times the model's memory) is kept while `model` lives and
    neither it nor the copy changes."""
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {', '.join(WEIGHTS)}, not {weights!r}")
    if weights == "fp32":
        return model, None
    state = weights_state(model)
    if (kept := _prepared.get(model)) is not None and kept[0] == state and kept[1] == weights_state(kept[2]):
        return kept[2], kept[3]
    matrices = int8_weights(model)
    reference = dequantized(model, matrices)
    _prepared[model] = (state, weights_state(reference), reference, matrices)
    return reference, matrices
