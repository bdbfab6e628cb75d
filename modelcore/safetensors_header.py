"""safetensors headers read and checked without torch: the bounded header, its entries, the GPT-2 shapes.

modelcore.export checks a file with these before loading it; the registry checks uploads with them before
storing (it must not import torch). Nothing here reads tensor data, and nothing here unpickles.
"""

from __future__ import annotations

import json
import math
import os
import struct
from pathlib import Path

MAX_HEADER_BYTES = 16 * 1024 * 1024  # GPT-2 1.5B needs ~60 KB; anything near this bound is not a GPT-2
PICKLE_MAGIC = (b"\x80", b"PK\x03\x04")  # a raw pickle (protocol 2+), and torch.save's zip archive
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
FLOAT_DTYPES = ("F32", "F16", "BF16")  # what GPT-2 weights may be stored as
PREFIX = "transformer."
# HF GPT-2 stores these as Conv1D, i.e. [in, out], the transpose of nn.Linear's [out, in].
CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
# Non-parameter buffers some GPT-2 checkpoints carry (the causal mask); they are recomputed, not loaded.
IGNORED = (".attn.bias", ".attn.masked_bias")
TIED = "lm_head.weight"  # the output layer, tied to wte: absent, or the same shape as wte


class UnsafeWeightsError(ValueError):
    """A weights file that is not a well-formed safetensors file for the expected model."""


def refuse_pickle_name(name: str | os.PathLike[str]) -> None:
    name = Path(name).name
    if Path(name).suffix != ".safetensors":
        raise UnsafeWeightsError(f"{name}: only .safetensors weights are accepted, never pickles (.bin/.pt)")


def read_header(path: str | os.PathLike[str], *, name: str | None = None) -> dict:
    """The header of a safetensors file, refused unless it is bounded, a JSON object and covers the file exactly.

    `name` is what error messages call the file (default: its own name).
    """
    path = Path(path)
    name = name or path.name
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if head.startswith(PICKLE_MAGIC):
            raise UnsafeWeightsError(f"{name} is a pickle (torch.save) file; only safetensors are accepted")
        if len(head) < 8:
            raise UnsafeWeightsError(f"{name}: too short to be safetensors")
        (n,) = struct.unpack("<Q", head)
        if n > MAX_HEADER_BYTES:
            raise UnsafeWeightsError(f"{name}: header of {n} bytes exceeds the {MAX_HEADER_BYTES}-byte bound")
        if n > size - 8:
            raise UnsafeWeightsError(f"{name}: header of {n} bytes runs past the end of the {size}-byte file")
        raw = f.read(n)
    if not raw.startswith(b"{"):
        raise UnsafeWeightsError(f"{name}: header is not a JSON object")
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UnsafeWeightsError(f"{name}: header is not JSON ({e})") from None
    if not isinstance(header, dict):
        raise UnsafeWeightsError(f"{name}: header is not a JSON object")
    _check_entries(name, header, data_bytes=size - 8 - n)
    return header


def _check_entries(name: str, header: dict, *, data_bytes: int) -> None:
    metadata = header.get("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise UnsafeWeightsError(f"{name}: __metadata__ must map names to strings")
    spans = []
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        if not isinstance(entry, dict) or entry.get("dtype") not in DTYPE_BYTES:
            raise UnsafeWeightsError(f"{name}: tensor {key!r} has no known dtype")
        shape, offsets = entry.get("shape"), entry.get("data_offsets")
        if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
            raise UnsafeWeightsError(f"{name}: tensor {key!r} has a malformed shape {shape!r}")
        if (not isinstance(offsets, list) or len(offsets) != 2 or not all(type(o) is int for o in offsets)
                or not 0 <= offsets[0] <= offsets[1]):
            raise UnsafeWeightsError(f"{name}: tensor {key!r} has malformed data_offsets {offsets!r}")
        if offsets[1] - offsets[0] != math.prod(shape) * DTYPE_BYTES[entry["dtype"]]:
            raise UnsafeWeightsError(f"{name}: tensor {key!r} data_offsets do not match its dtype and shape")
        spans.append((offsets[0], offsets[1], key))
    end = 0
    for begin, stop, key in sorted(spans):
        if begin != end:
            raise UnsafeWeightsError(f"{name}: tensor {key!r} overlaps another or leaves a gap in the data")
        end = stop
    if end != data_bytes:
        raise UnsafeWeightsError(f"{name}: the tensors cover {end} bytes but the file holds {data_bytes} after "
                                 "its header")


def expected_shapes(*, n_vocab: int, n_ctx: int, n_embd: int, n_layer: int) -> dict[str, tuple[int, ...]]:
    """modelcore's tensor names (no `transformer.` prefix) and their shapes in the HF layout (Conv1D: [in, out])."""
    e = n_embd
    shapes: dict[str, tuple[int, ...]] = {"wte.weight": (n_vocab, e), "wpe.weight": (n_ctx, e)}
    for i in range(n_layer):
        block = {
            "ln_1.weight": (e,), "ln_1.bias": (e,),
            "attn.c_attn.weight": (e, 3 * e), "attn.c_attn.bias": (3 * e,),
            "attn.c_proj.weight": (e, e), "attn.c_proj.bias": (e,),
            "ln_2.weight": (e,), "ln_2.bias": (e,),
            "mlp.c_fc.weight": (e, 4 * e), "mlp.c_fc.bias": (4 * e,),
            "mlp.c_proj.weight": (4 * e, e), "mlp.c_proj.bias": (e,),
        }
        shapes.update({f"h.{i}.{name}": shape for name, shape in block.items()})
    shapes.update({"ln_f.weight": (e,), "ln_f.bias": (e,)})
    return shapes


def check_tensors(name: str, header: dict, expected: dict[str, tuple[int, ...]]) -> dict[str, str]:
    """Each stored tensor's name -> modelcore's name, refusing unexpected, missing or misshapen tensors."""
    names = {}
    for raw, entry in header.items():
        if raw == "__metadata__":
            continue
        short = raw.removeprefix(PREFIX)
        if short.endswith(IGNORED):
            continue
        if short == TIED:  # tied to wte: its values are compared when loaded, then it is dropped
            shape = expected["wte.weight"]
        elif short in expected:
            shape = expected[short]
        else:
            raise UnsafeWeightsError(f"{name}: unexpected tensor {raw!r} for this config")
        if entry.get("dtype") not in FLOAT_DTYPES or entry.get("shape") != list(shape):
            raise UnsafeWeightsError(
                f"{name}: tensor {raw!r} is {entry.get('dtype')} {entry.get('shape')}, expected a float {list(shape)}"
            )
        names[raw] = short
    if missing := set(expected) - set(names.values()):
        raise UnsafeWeightsError(f"{name}: missing tensors {sorted(missing)[:5]}")
    return names


def check_weights_file(path: str | os.PathLike[str], *, n_vocab: int, n_ctx: int, n_embd: int, n_layer: int,
                       name: str | None = None) -> dict[str, str]:
    """Refuse anything but a safetensors file of GPT-2 weights for these hparams; returns check_tensors' names.

    `name` is the file's name where it is going (default: its own name): its suffix must be `.safetensors`.
    """
    name = name or Path(path).name
    refuse_pickle_name(name)
    expected = expected_shapes(n_vocab=n_vocab, n_ctx=n_ctx, n_embd=n_embd, n_layer=n_layer)
    return check_tensors(name, read_header(path, name=name), expected)
