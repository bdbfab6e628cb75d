"""Tiny, well-formed safetensors files of GPT-2 weights written without torch, for tests that store weights."""

import json
import math
import os
import struct

from modelcore.safetensors_header import DTYPE_BYTES, PREFIX, expected_shapes


def safetensors_bytes(shapes: dict[str, tuple[int, ...]], *, dtype: str = "F16", data: bytes | None = None,
                      metadata: dict[str, str] | None = None) -> bytes:
    """A safetensors file holding `shapes` in order, its data section random unless `data` is given."""
    header: dict = {"__metadata__": metadata or {"format": "pt"}}
    offset = 0
    for name, shape in shapes.items():
        end = offset + math.prod(shape) * DTYPE_BYTES[dtype]
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, end]}
        offset = end
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # as safetensors pads it
    body = os.urandom(offset) if data is None else data
    return struct.pack("<Q", len(raw)) + raw + body


def gpt2_safetensors(hparams: dict, **kwargs) -> bytes:
    """Weights for a size with these hparams, named as modelcore's export names them."""
    shapes = expected_shapes(n_vocab=hparams["n_vocab"], n_ctx=hparams["n_ctx"], n_embd=hparams["n_embd"],
                             n_layer=hparams["n_layer"])
    return safetensors_bytes({PREFIX + name: shape for name, shape in shapes.items()}, **kwargs)
