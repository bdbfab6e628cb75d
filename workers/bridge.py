"""The one bridge between registry records and modelcore: configs, and models fetched from S3."""

from functools import lru_cache
from pathlib import Path

from django.conf import settings

from registry import storage
from registry.models import ModelSize, Revision

MODEL_FILES = ("config.json", "model.safetensors", "vocab.json", "merges.txt")


def gpt_config(size: ModelSize):
    from modelcore.model import GPTConfig

    return GPTConfig.from_hparams(size.hparams.as_dict())


def model_dir(revision: Revision) -> Path:
    """A revision's HF-layout files in a local cache keyed by the revision's content (safe to lose), fetched
    from S3 once and checked against the registry."""
    artifacts = {a.filename: a for a in revision.artifacts.filter(filename__in=MODEL_FILES)}
    missing = sorted(set(MODEL_FILES) - set(artifacts))
    if missing:
        raise FileNotFoundError(f"{revision} has no trained files ({', '.join(missing)} missing)")
    target = Path(settings.STAGEGATE_CACHE_DIR) / "models" / revision.revision
    for name, artifact in artifacts.items():
        path = target / name
        if not path.exists() or path.stat().st_size != artifact.bytes:
            stored = storage.download_file(artifact.s3_key, path)
            if stored.sha256 != artifact.sha256:
                path.unlink(missing_ok=True)
                raise storage.ChecksumMismatch(f"{revision}/{name} in S3 differs from the registry's record")
    return target


@lru_cache(maxsize=2)
def _load(directory: str):
    from modelcore.export import import_hf

    return import_hf(directory)


def load_model(revision: Revision):
    """(model, tokenizer, config) of a trained revision; kept in memory per worker process."""
    return _load(str(model_dir(revision)))


# modelcore.quantize.WEIGHTS and modelcore.train.PRECISIONS, named here so that checking a job's parameters does
# not import torch.
WEIGHTS = ("fp32", "int8")
TRAINING_PRECISIONS = ("auto", "fp32", "bf16")


def precision(device: str) -> str:
    """What modelcore computes in on `device`, as jobs record it: exact fp32 on CPU; bf16 autocast on CUDA."""
    return "bf16" if device == "cuda" else "fp32"
