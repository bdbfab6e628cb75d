"""Weights are checked before the registry stores them: safetensors only, a bounded header, the size's shapes.

The checks are modelcore's torch-free ones (modelcore/safetensors_header.py), the same modelcore runs before
it loads a file, so nothing the registry stores is refused when it is loaded.
"""

from pathlib import Path

from modelcore.safetensors_header import PICKLE_SUFFIXES, UnsafeWeightsError, check_weights_file
from registry.errors import UnsafeWeights
from registry.models import ModelSize

WEIGHTS_SUFFIX = ".safetensors"


def weights_name_check(filename: str) -> None:
    """Pickled weights are refused by name, before their bytes are looked at."""
    if Path(filename).suffix.lower() in PICKLE_SUFFIXES:
        raise UnsafeWeights(f"{filename}: pickled weights ({', '.join(PICKLE_SUFFIXES)}) are never accepted; "
                            f"store them as {WEIGHTS_SUFFIX}.")


def weights_check(*, size: ModelSize, path: Path, filename: str) -> None:
    """Refuse a `.safetensors` file unless its header is well formed and its tensors fit the size's hparams."""
    hp = size.hparams
    try:
        check_weights_file(path, name=filename, n_vocab=hp.n_vocab, n_ctx=hp.n_ctx, n_embd=hp.n_embd,
                           n_layer=hp.n_layer)
    except UnsafeWeightsError as error:
        raise UnsafeWeights(f"{error} (for {size.slug}: {hp.n_layer} layers, width {hp.n_embd}, "
                            f"vocabulary {hp.n_vocab}, context {hp.n_ctx}).") from None
