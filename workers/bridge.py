"""The one bridge between registry records and modelcore: configs, corpora, and models fetched from S3."""

import sysconfig
from functools import lru_cache
from pathlib import Path

from django.conf import settings

from registry import storage
from registry.models import ModelSize

MODEL_FILES = ("config.json", "model.safetensors", "vocab.json", "merges.txt")
DEFAULT_CORPUS = "default"
_SHAKESPEARE = "tinyshakespeare/input.txt"
FALLBACK_CORPUS_BYTES = 1_500_000
# The tail of every corpus is held out of training: validation loss and human reference text.
HELD_OUT_FRACTION = 0.1


def gpt_config(size: ModelSize):
    from modelcore.model import GPTConfig

    return GPTConfig.from_hparams(size.hparams.as_dict())


def corpora_dir() -> Path:
    return Path(settings.STAGEGATE_CORPORA_DIR)


def corpus_name(spec: str) -> str:
    """A short name for a corpus spec, used in dataset names and cards."""
    if spec == DEFAULT_CORPUS:
        return "tinyshakespeare" if (corpora_dir() / _SHAKESPEARE).is_file() else "python-stdlib"
    return Path(spec.rstrip("/")).stem or "corpus"


def corpus_text(spec: str) -> str:
    """The text of a corpus: a local file, `s3://<key or prefix>` in our bucket, or `default`.

    `default` is Tiny Shakespeare from the shared corpora when present; machines without them fall back
    to the Python standard library's own source text, which every Python installation has.
    """
    if spec == DEFAULT_CORPUS:
        shakespeare = corpora_dir() / _SHAKESPEARE
        return shakespeare.read_text(encoding="utf-8") if shakespeare.is_file() else _stdlib_text()
    if spec.startswith("s3://"):
        return _s3_text(spec.removeprefix("s3://"))
    path = Path(spec)
    if not path.is_file():
        raise FileNotFoundError(f"corpus {spec!r} is not a file")
    return path.read_text(encoding="utf-8", errors="replace")


def split_corpus(text: str) -> tuple[str, str]:
    """(training text, held-out text), cut at a line boundary near the held-out fraction."""
    cut = text.rfind("\n", 0, int(len(text) * (1 - HELD_OUT_FRACTION))) + 1 or int(len(text) * 0.9)
    return text[:cut], text[cut:]


def encode_documents(tokenizer, text: str) -> list[int]:
    """Token ids of a corpus with <|endoftext|> after each document (blank-line separated), as in GPT-2's
    training data: the model learns where a text ends, which gives sampled rows a meaningful `ended`."""
    ids: list[int] = []
    for document in text.split("\n\n"):
        if document.strip():
            ids.extend(tokenizer.encode(document.strip("\n") + "\n"))
            ids.append(tokenizer.eot_id)
    return ids


def _stdlib_text() -> str:
    parts, size = [], 0
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")):
        text = path.read_text(encoding="utf-8", errors="replace")
        parts.append(text)
        size += len(text)
        if size >= FALLBACK_CORPUS_BYTES:
            break
    return "\n".join(parts)


def _s3_text(key_or_prefix: str) -> str:
    # storage maps S3 failures to StorageUnavailable, which the job tasks retry.
    keys = storage.list_keys(key_or_prefix)
    if not keys:
        raise FileNotFoundError(f"no objects under s3://{key_or_prefix}")
    return "\n".join(storage.read_bytes(key).decode("utf-8", "replace") for key in keys)


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
