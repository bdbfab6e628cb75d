"""Batch-1 decoding in one native call: decode_step.c, compiled for this machine on first use.

At batch 1 a decoding step is memory-bound: it reads every weight once. torch spends most of the step
elsewhere (operator overhead, and matrix-vector kernels well below a bare read), so sampling at batch 1 on
CPU feeds each token through `decode_step` instead of GPT.decode. The prompt still goes through the
model in torch, which fills the same key/value cache the step then extends.

Building needs a C compiler with OpenMP (gcc; $CC to choose another). Where there is none, or the build
fails, `decoder` returns None and sampling stays in torch; `unavailable_reason()` says why (and is
logged once). So it does for a model or cache the step cannot run (`unfit`: not fp32 on CPU, say). The
library is cached per source, flags, compiler and CPU in $MODELCORE_NATIVE_CACHE (default
~/.cache/stagegate/modelcore), and loaded only from a folder and file no other user can write.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch
from torch import Tensor

from . import quantize
from .model import GPT, GPTConfig
from .quantize import Int8Matrix

logger = logging.getLogger(__name__)
SOURCE = Path(__file__).with_name("decode_step.c")
# -ffp-contract=off: no fused multiply-adds but the dot products' own (decode_step.c's MADD), so that the
# rest rounds the same way on every CPU.
FLAGS = ["-O3", "-march=native", "-ffp-contract=off", "-fno-math-errno", "-fopenmp", "-shared", "-fPIC"]
PER_LAYER = 12  # pointers per layer, in decode_step.c's order
_LAYER_PARAMETERS = ("ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias",
                     "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight", "ln_2.bias",
                     "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias")  # fmt: skip


class _Model(ctypes.Structure):
    _fields_ = [(name, ctypes.c_int) for name in ("n_layer", "n_embd", "n_head", "n_ctx", "n_vocab")] + [
        (name, ctypes.c_void_p) for name in ("wte", "wpe", "ln_f_w", "ln_f_b")
    ] + [("layers", ctypes.POINTER(ctypes.c_void_p)), ("kv", ctypes.POINTER(ctypes.c_void_p))] + [
        (name, ctypes.c_void_p) for name in ("wte_q", "wte_scales")
    ] + [("q_layers", ctypes.POINTER(ctypes.c_void_p)), ("q_scales", ctypes.POINTER(ctypes.c_void_p))]


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
    expected = (2, 1, c.n_head, c.n_ctx, c.head_dim)
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
    """Calling it with (token, pos) feeds one token at pos to a batch-1 model and returns next-token
    logits [1, V], as model.decode(tensor([[token]]), kv_cache, pos) does, filling the same kv_cache.
    With `int8` (quantize.int8_weights) it reads those in place of the model's matrices.

    It reads the weights and the cache in place, as they were when it was made: it keeps their memory
    alive, but a weight replaced afterwards (model.double(), load_state_dict(assign=True)) is not seen.
    """

    def __init__(self, library: ctypes.CDLL, model: GPT, kv_cache: list[Tensor],
                 int8: dict[str, Int8Matrix] | None = None) -> None:
        if reason := unfit(model, kv_cache) or (int8 is not None and _int8_unfit(model, int8)):
            raise ValueError(reason)
        c = model.config
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
                             ctypes.cast(q_scales, ctypes.POINTER(ctypes.c_void_p)) if q_scales else None)  # fmt: skip
        # fp32 whatever torch's default dtype: the C side writes floats (10C + n_ctx * n_head of them here).
        self._work = torch.empty(10 * c.n_embd + c.n_ctx * c.n_head, dtype=torch.float32)
        self._threads = torch.get_num_threads()

    def __call__(self, token: int, pos: int) -> Tensor:
        if not 0 <= token < self._n_vocab:
            raise ValueError(f"token {token} is outside the vocabulary of {self._n_vocab}")
        if not 0 <= pos < self._n_ctx:
            raise ValueError(f"position {pos} exceeds n_ctx {self._n_ctx}")
        logits = torch.empty(1, self._n_vocab, dtype=torch.float32)
        status = self._library.decode_step(ctypes.byref(self._model), token, pos, self._threads,
                                           self._work.data_ptr(), logits.data_ptr())  # fmt: skip
        if status:
            raise RuntimeError(f"decode_step refused token {token} at position {pos}")
        return logits


def decoder(model: GPT, kv_cache: list[Tensor], int8: dict[str, Int8Matrix] | None = None) -> FusedDecoder | None:
    """A FusedDecoder for this model (reading `int8` in place of its matrices, if given) and batch-1 cache,
    or None where the native library is unavailable (unavailable_reason) or cannot run them (unfit):
    sampling then stays in torch."""
    if unfit(model, kv_cache) or (library := _library()) is None:
        return None
    return FusedDecoder(library, model, kv_cache, int8)


def unavailable_reason() -> str | None:
    """Why the native library cannot be used here, or None when it can."""
    return _build()[1]


def _library() -> ctypes.CDLL | None:
    return _build()[0]


@functools.cache
def _build() -> tuple[ctypes.CDLL | None, str | None]:
    compiler = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    try:
        if not compiler:
            raise OSError("no C compiler found (install gcc, or set CC)")
        path = _compiled(compiler)
        try:
            library = _load(path)
        except _Unloadable:  # a damaged cached file (a disk that filled mid-write, say): build it once more
            path.unlink(missing_ok=True)
            library = _load(_compiled(compiler))
    except (OSError, subprocess.SubprocessError) as exc:
        reason = f"building {SOURCE.name} failed: {exc}"
        logger.warning("batch-1 sampling stays in torch (slower): %s", reason)
        return None, reason
    library.decode_step.argtypes = [ctypes.POINTER(_Model), ctypes.c_int, ctypes.c_int, ctypes.c_int,
                                    ctypes.c_void_p, ctypes.c_void_p]  # fmt: skip
    library.decode_step.restype = ctypes.c_int
    return library, None


class _Unloadable(OSError):
    pass


def _load(path: Path) -> ctypes.CDLL:
    """Load a cached library, only if this user alone could have written it and its folder."""
    for item in (path.parent, path):
        info = item.stat()
        if info.st_uid != os.getuid() or info.st_mode & 0o022:
            raise OSError(f"{item} is not this user's alone (owner or group/other write access): not loading it")
    try:
        return ctypes.CDLL(str(path))
    except OSError as exc:
        raise _Unloadable(str(exc)) from exc


def _compiled(compiler: str) -> Path:
    """The shared library for this source, flags, compiler and CPU, compiled unless cached."""
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True, errors="replace",
                             check=True, timeout=30).stdout  # fmt: skip
    key = hashlib.sha256("\0".join([SOURCE.read_text(), *FLAGS, version, _cpu()]).encode()).hexdigest()[:16]
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "stagegate" / "modelcore"
    cache = Path(os.environ.get("MODELCORE_NATIVE_CACHE") or default)
    path = cache / f"decode_step-{key}.so"
    if path.is_file():
        return path
    cache.mkdir(parents=True, exist_ok=True, mode=0o700)  # it holds code this process will load
    # Built beside its final name and renamed into place, so processes building at once never load half a file.
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=cache)
    os.close(fd)
    try:
        done = subprocess.run([compiler, *FLAGS, str(SOURCE), "-o", tmp, "-lm"], capture_output=True, text=True,
                              errors="replace", timeout=300)  # fmt: skip
        if done.returncode:
            raise OSError(done.stderr.strip()[-2000:] or f"{compiler} exited {done.returncode}")
        os.chmod(tmp, 0o755)  # mkstemp makes it 0600; group and others may run it, not write it
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def _cpu() -> str:
    """What -march=native compiles for: the machine and, on Linux, its CPU's model and feature flags."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    wanted = [line for line in lines if line.startswith(("model name", "flags", "Features"))][:2]
    return "\n".join([platform.machine(), *wanted])
