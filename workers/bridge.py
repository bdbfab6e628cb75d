"""The one bridge between registry records and modelcore: configs, and models fetched from S3."""

from functools import lru_cache
from pathlib import Path

from django.conf import settings

from registry import storage
from registry.models import ModelSize

MODEL_FILES = ("config.json", "model.safetensors", "vocab.json", "merges.txt")


def gpt_config(size: ModelSize):
    from modelcore.model import GPTConfig

    return GPTConfig.from_hparams(size.hparams.as_dict())


def model_dir(size: ModelSize) -> Path:
    """The size's HF-layout files in a local cache, fetched from S3 once and checked against the registry."""
    artifacts = {a.filename: a for a in size.artifacts.filter(filename__in=MODEL_FILES)}
    missing = sorted(set(MODEL_FILES) - set(artifacts))
    if missing:
        raise FileNotFoundError(f"{size.slug} has no trained files ({', '.join(missing)} missing)")
    target = Path(settings.STAGEGATE_CACHE_DIR) / "models" / artifacts["model.safetensors"].sha256
    for name, artifact in artifacts.items():
        path = target / name
        if not path.exists() or path.stat().st_size != artifact.bytes:
            stored = storage.download_file(artifact.s3_key, path)
            if stored.sha256 != artifact.sha256:
                path.unlink(missing_ok=True)
                raise storage.ChecksumMismatch(f"{size.slug}/{name} in S3 differs from the registry's record")
    return target


@lru_cache(maxsize=2)
def _load(directory: str):
    from modelcore.export import import_hf

    return import_hf(directory)


def load_model(size: ModelSize):
    """(model, tokenizer, config) of a trained size; kept in memory per worker process."""
    return _load(str(model_dir(size)))
