"""Decoding steps in one native call: decode_step.c's `decode_step` at batch 1 and `decode_batch` above it
(built by modelcore/native.py).

At batch 1 a decoding step is memory-bound: it reads every weight once. torch spends most of the step
elsewhere (operator overhead, and matrix-vector kernels well below a bare read), so sampling at batch 1 on
CPU feeds each token through `decode_step` instead of GPT.decode. At a shard's batch of 25 the products
dominate, but torch still spends a third of the step around them (a hundred operator calls, attention for
one query per row); `decode_batch` runs the step in one OpenMP region on packed copies of the matrices,
multiplied as BLIS and oneDNN do (bench/README.md). The prompt still goes through the model in torch, which
fills the same key/value cache the step then extends.

Where the native library cannot be built (native.unavailable_reason() says why), `decoder` returns None and
sampling stays in torch. So it does for a model or cache the step cannot run (`unfit`: not fp32 on CPU, say).
"""

from __future__ import annotations

import ctypes
import weakref
from collections.abc import Sequence

import torch
from torch import Tensor

from . import native, quantize
from .model import GPT, GPTConfig
from .quantize import Int8Matrix

PER_LAYER = 12  # pointers per layer, in decode_step.c's order
_LAYER_PARAMETERS = ("ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias",
                     "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight", "ln_2.bias",
                     "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias")  # fmt: skip


class _Model(ctypes.Structure):
    _fields_ = [(name, ctypes.c_int) for name in ("n_layer", "n_embd", "n_head", "n_ctx", "n_vocab")] + [
        (name, ctypes.c_void_p) for name in ("wte", "wpe", "ln_f_w", "ln_f_b")
    ] + [("layers", ctypes.POINTER(ctypes.c_void_p)), ("kv", ctypes.POINTER(ctypes.c_void_p))] + [
        (name, ctypes.c_void_p) for name in ("wte_q", "wte_scales")
    ] + [("q_layers", ctypes.POINTER(ctypes.c_void_p)), ("q_scales", ctypes.POINTER(ctypes.c_void_p))] + [
        ("kv_batch", ctypes.c_int), ("wte_packed", ctypes.c_void_p), ("packed_layers", ctypes.POINTER(ctypes.c_void_p)),
        ("wte_packed_q", ctypes.c_void_p), ("packed_q_layers", ctypes.POINTER(ctypes.c_void_p)),
    ]
PANEL = 16  # decode_step.c's pack_panels: rows of a matrix per panel


def expected_shapes(config: GPTConfig) -> dict[str, tuple[int, ...]]:
    """Every parameter's shape, by name, as decode_step.c reads it."""
    C, V = config.n_embd, config.n_vocab
    per_layer = dict(zip(_LAYER_PARAMETERS, [(C,), (C,), (3 * C, C), (3 * C,), (C, C), (C,),
                                             (C,), (C,), (4 * C, C), (4 * C,), (C, 4 * C), (C,)], strict=True))  # fmt: skip
    shapes = {"wte.weight": (V, C), "wpe.weight": (config.n_ctx, C), "ln_f.weight": (C,), "ln_f.bias": (C,)}
    for i in range(config.n_layer):
        shapes.update({f"h.{i}.{name}": shape for name, shape in per_layer.items()})
    return shapes


def unfit(model: GPT, kv_cache: list[Tensor]) -> str | None:
    """Why the fused step cannot run this model and cache, or None when it can."""
    c = model.config
    if model.training and c.dropout > 0:
        return "the fused step has no dropout: put the model in eval mode"
    params, shapes = dict(model.named_parameters()), expected_shapes(c)
    if set(params) != set(shapes):
        return f"the fused step reads exactly GPT's parameters; this model has {sorted(set(params) ^ set(shapes))}"
    for name, p in params.items():
        if not (p.is_cpu and p.dtype == torch.float32 and p.is_contiguous() and tuple(p.shape) == shapes[name]):
            return f"the fused step needs contiguous fp32 CPU weights of the config's shapes; {name} is not"
    batch = kv_cache[0].shape[1] if kv_cache and kv_cache[0].dim() == 5 else 1
    expected = (2, batch, c.n_head, c.n_ctx, c.head_dim)
    if len(kv_cache) != c.n_layer or any(
        tuple(kv.shape) != expected or kv.dtype != torch.float32 or not kv.is_cpu or not kv.is_contiguous()
        for kv in kv_cache
    ):
        return f"the fused step needs {c.n_layer} contiguous fp32 CPU caches of shape {expected}"
    return None


def _int8_unfit(model: GPT, int8: dict[str, Int8Matrix]) -> str | None:
    params = dict(model.named_parameters())
    if set(int8) != set(quantize.matrix_names(model)):
        return "the fused step's int8 weights are exactly quantize.matrix_names(model)"
    for name, matrix in int8.items():
        rows = params[name].shape[0]
        if not (matrix.values.dtype == torch.int8 and matrix.values.is_cpu and matrix.values.is_contiguous()
                and tuple(matrix.values.shape) == tuple(params[name].shape)
                and matrix.scales.dtype == torch.float32 and matrix.scales.is_cpu and matrix.scales.is_contiguous()
                and tuple(matrix.scales.shape) == (rows,)):
            return f"the fused step needs contiguous int8 CPU values and fp32 row scales of {name}'s shape"
    return None


class FusedDecoder:
    """Calling it with (tokens, pos) feeds one token per row at pos and returns next-token logits [b, V], as
    model.decode(tokens[:, None], [kv[:, :b] for kv in kv_cache], pos) does, filling the same cache: b rows
    of the cache's B, b <= B (a last, smaller batch). Tokens: an int at batch 1, else a sequence or tensor.
    At batch 1 it runs decode_step, with more rows decode_batch, one native call either way, reading `int8`
    (quantize.int8_weights) in place of the model's matrices if given.

    It reads the weights and the cache in place, as they were when it was made: it keeps their memory
    alive, but a weight replaced afterwards (model.double(), load_state_dict(assign=True)) is not seen.
    """

    def __init__(self, library: ctypes.CDLL, model: GPT, kv_cache: list[Tensor],
                 int8: dict[str, Int8Matrix] | None = None) -> None:
        if reason := unfit(model, kv_cache) or (int8 is not None and _int8_unfit(model, int8)):
            raise ValueError(reason)
        c = model.config
        self._batch = kv_cache[0].shape[1]
        # Detached views share the parameters' memory and keep it alive even if a parameter is replaced.
        params = {name: p.detach() for name, p in model.named_parameters()}
        self._library, self._n_vocab, self._n_ctx = library, c.n_vocab, c.n_ctx
        self._keep = (params, list(kv_cache), dict(int8 or {}))  # the pointers below point into these
        slots = [f"h.{i}.{name}" for i in range(c.n_layer) for name in _LAYER_PARAMETERS]
        self._layers = (ctypes.c_void_p * len(slots))(*(params[name].data_ptr() for name in slots))
        self._kv = (ctypes.c_void_p * c.n_layer)(*(kv.data_ptr() for kv in kv_cache))
        q_layers = q_scales = None
        if int8 is not None:
            q_layers = (ctypes.c_void_p * len(slots))(*(int8[n].values.data_ptr() if n in int8 else None for n in slots))
            q_scales = (ctypes.c_void_p * len(slots))(*(int8[n].scales.data_ptr() if n in int8 else None for n in slots))
        self._q = (q_layers, q_scales)
        wte_q = (int8["wte.weight"].values.data_ptr(), int8["wte.weight"].scales.data_ptr()) if int8 else (None, None)
        self._model = _Model(c.n_layer, c.n_embd, c.n_head, c.n_ctx, c.n_vocab,
                             *(params[n].data_ptr() for n in ("wte.weight", "wpe.weight", "ln_f.weight", "ln_f.bias")),
                             self._layers, self._kv, *wte_q,
                             ctypes.cast(q_layers, ctypes.POINTER(ctypes.c_void_p)) if q_layers else None,
                             ctypes.cast(q_scales, ctypes.POINTER(ctypes.c_void_p)) if q_scales else None,
                             self._batch, *self._packed(model, slots, int8))  # fmt: skip
        # fp32 whatever torch's default dtype: the C side writes floats (10C + n_ctx * n_head a row).
        self._work = torch.empty(self._batch * (10 * c.n_embd + c.n_ctx * c.n_head), dtype=torch.float32)
        self._threads = torch.get_num_threads()

    def _packed(self, model: GPT, slots: list[str], int8: dict[str, Int8Matrix] | None) -> tuple:
        """decode_batch's packed matrices: (wte, per-slot pointers) for fp32 and for int8, the kind not read
        None, all None at batch 1."""
        if self._batch == 1:
            return None, None, None, None
        packed = _packed_matrices(self._library, model, int8)
        self._keep = (*self._keep, packed)
        layers = (ctypes.c_void_p * len(slots))(*(packed[n].data_ptr() if n in packed else None for n in slots))
        self._packed_layers = layers
        pointers = (packed["wte.weight"].data_ptr(), ctypes.cast(layers, ctypes.POINTER(ctypes.c_void_p)))
        return (None, None, *pointers) if int8 else (*pointers, None, None)

    def __call__(self, tokens: int | Sequence[int] | Tensor, pos: int) -> Tensor:
        # Checked as int64, then narrowed for the C side: a narrowing first would wrap 2**32 + 5 to 5.
        rows = torch.as_tensor([tokens] if isinstance(tokens, int) else tokens, dtype=torch.int64).reshape(-1)
        if not 1 <= len(rows) <= self._batch:
            raise ValueError(f"{len(rows)} tokens for a cache of {self._batch} rows")
        if bool(((rows < 0) | (rows >= self._n_vocab)).any()):
            raise ValueError(f"tokens {rows.tolist()} are not all in the vocabulary of {self._n_vocab}: one is "
                             "outside the vocabulary")
        if not 0 <= pos < self._n_ctx:
            raise ValueError(f"position {pos} exceeds n_ctx {self._n_ctx}")
        rows = rows.to(torch.int32)
        logits = torch.empty(len(rows), self._n_vocab, dtype=torch.float32)
        if self._batch == 1:
            status = self._library.decode_step(ctypes.byref(self._model), int(rows[0]), pos, self._threads,
                                               self._work.data_ptr(), logits.data_ptr())  # fmt: skip
        else:
            status = self._library.decode_batch(ctypes.byref(self._model), rows.data_ptr(), len(rows), pos,
                                                self._threads, self._work.data_ptr(), logits.data_ptr())  # fmt: skip
        if status:
            raise RuntimeError(f"the native step refused tokens {rows.tolist()} at position {pos}")
        return logits


# Per model, its packed matrices while its weights (and int8 values) stay as they were: a worker samples one
# loaded model shard after shard, and packing GPT-2 124M's shape anew each time took 0.1 s, or 0.5 s where
# the kernel had to compact memory for the huge pages first (after another program's run).
_kept: weakref.WeakKeyDictionary[GPT, tuple[tuple, dict[str, Tensor]]] = weakref.WeakKeyDictionary()


def _packed_matrices(library: ctypes.CDLL, model: GPT, int8: dict[str, Int8Matrix] | None) -> dict[str, Tensor]:
    """Each of quantize.matrix_names(model) packed in panels (its int8 values, if given), by name: a copy the
    matrices' size again, as torch's own blocked layouts for batched products hold, kept while the model
    lives and neither its weights nor the int8 values change."""
    params = dict(model.named_parameters())
    sources = {name: int8[name].values if int8 else params[name].detach() for name in quantize.matrix_names(model)}
    values = tuple((id(t), t.data_ptr(), t._version) for t in sources.values()) if int8 else None
    state = (quantize.weights_state(model), values)
    if (kept := _kept.get(model)) is not None and kept[0] == state:
        return kept[1]
    sizes = {name: -(-source.shape[0] // PANEL) * PANEL * source.shape[1] for name, source in sources.items()}
    # One allocation for all of them, so that the native side can ask for huge pages over nearly all of it
    # (decode_step.c's want_huge_pages); each matrix starts on a cache line (torch aligns to 64 bytes).
    line = 64 // sources["wte.weight"].element_size()
    starts, total = {}, 0
    for name, size in sizes.items():
        starts[name], total = total, total + -(-size // line) * line
    memory = torch.empty(total, dtype=sources["wte.weight"].dtype)
    library.want_huge_pages(memory.data_ptr(), memory.numel() * memory.element_size())
    packed = {name: memory[starts[name] : starts[name] + size] for name, size in sizes.items()}
    pack = library.pack_panels_q8 if int8 else library.pack_panels
    for name, source in sources.items():
        pack(source.data_ptr(), packed[name].data_ptr(), *source.shape)
    _kept[model] = (state, packed)
    return packed


def decoder(model: GPT, kv_cache: list[Tensor], int8: dict[str, Int8Matrix] | None = None) -> FusedDecoder | None:
    """A FusedDecoder for this model (reading `int8` in place of its matrices, if given) and cache, or None
    where the native library is unavailable (native.unavailable_reason) or cannot run them (unfit): sampling
    then stays in torch."""
    if unfit(model, kv_cache) or (library := _library()) is None:
        return None
    return FusedDecoder(library, model, kv_cache, int8)


def _library() -> ctypes.CDLL | None:
    """The native library with decode_step's signature declared, or None where it cannot be built."""
    if (library := native.library()) is not None:
        library.decode_step.argtypes = [ctypes.POINTER(_Model), ctypes.c_int, ctypes.c_int, ctypes.c_int,
                                        ctypes.c_void_p, ctypes.c_void_p]  # fmt: skip
        library.decode_step.restype = ctypes.c_int
        library.decode_batch.argtypes = [ctypes.POINTER(_Model), ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
                                         ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]  # fmt: skip
        library.decode_batch.restype = ctypes.c_int
        for pack in (library.pack_panels, library.pack_panels_q8):
            pack.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
            pack.restype = None
        library.want_huge_pages.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        library.want_huge_pages.restype = None
    return library
