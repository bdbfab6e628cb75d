"""Training and reference corpora, from an allow-list only: a job reads text from nowhere else.

A corpus is one of
- `default`: Tiny Shakespeare from the shared corpora where present, else the Python standard library's own
  source text (which every Python installation has);
- a file inside STAGEGATE_CORPORA_DIR, named relative to it (`tinyshakespeare/input.txt`) or by an absolute
  path that resolves inside it, symbolic links included (a link pointing out of it is refused);
- `s3://corpora/<key or prefix>` in the platform's bucket: the `corpora/` prefix only, never weights, jobs,
  datasets or audit objects.

Anything else (`/proc/self/environ`, `/etc/shadow`, `s3://models/…`) is refused when the job is submitted,
and again when it runs; a corpus above STAGEGATE_CORPUS_MAX_BYTES is refused too, before it is read.
"""

import sysconfig
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from django.conf import settings

from registry import storage

DEFAULT_CORPUS = "default"
S3_SCHEME = "s3://"
S3_CORPORA_PREFIX = "corpora/"
_SHAKESPEARE = "tinyshakespeare/input.txt"
FALLBACK_CORPUS_BYTES = 1_500_000
# The tail of every corpus is held out of training: validation loss and human reference text.
HELD_OUT_FRACTION = 0.1


class CorpusRefused(ValueError):
    """The corpus is not on the allow-list, or too large; the message says which rule it broke."""


@dataclass(frozen=True)
class Corpus:
    spec: str  # as it is stored on the job: `default`, a path inside the corpora folder, or s3://corpora/…
    name: str  # a short name for dataset names and cards


def corpora_dir() -> Path:
    return Path(settings.STAGEGATE_CORPORA_DIR)


def corpus_check(spec: object) -> Corpus:
    """The allowed corpus `spec` names, normalised; CorpusRefused otherwise."""
    if spec == DEFAULT_CORPUS:
        name = "tinyshakespeare" if (corpora_dir() / _SHAKESPEARE).is_file() else "python-stdlib"
        return Corpus(spec=DEFAULT_CORPUS, name=name)
    if not isinstance(spec, str) or not spec or len(spec) > 1000 or "\x00" in spec:
        raise CorpusRefused("a corpus is 'default', a file in the corpora folder or an s3://corpora/ prefix")
    if spec.startswith(S3_SCHEME):
        return _s3_corpus(spec.removeprefix(S3_SCHEME))
    return _local_corpus(spec)


def _s3_corpus(key: str) -> Corpus:
    parts = PurePosixPath(key).parts
    if not key.startswith(S3_CORPORA_PREFIX) or ".." in parts or len(parts) < 2:
        raise CorpusRefused(f"only objects under s3://{S3_CORPORA_PREFIX} may be read as a corpus")
    total = sum(size for _key, size in storage.list_sizes(key))
    if total == 0:
        raise CorpusRefused(f"no objects under s3://{key}")
    _check_size(total, f"s3://{key}")
    return Corpus(spec=S3_SCHEME + key, name=PurePosixPath(key.rstrip("/")).stem or "corpus")


def _local_corpus(spec: str) -> Corpus:
    root = corpora_dir().resolve()
    path = (root / spec).resolve()  # an absolute spec replaces root; resolve() follows every link
    if not path.is_relative_to(root):
        raise CorpusRefused(f"{spec!r} is outside the corpora folder ({root}); only files there may be read")
    if not path.is_file():
        raise CorpusRefused(f"{spec!r} is not a file in the corpora folder")
    _check_size(path.stat().st_size, spec)
    return Corpus(spec=str(path.relative_to(root)), name=path.stem or "corpus")


def _check_size(size: int, what: str) -> None:
    if size > settings.STAGEGATE_CORPUS_MAX_BYTES:
        raise CorpusRefused(f"{what} holds {size:,} bytes, above STAGEGATE_CORPUS_MAX_BYTES "
                            f"({settings.STAGEGATE_CORPUS_MAX_BYTES:,})")


def corpus_name(spec: str) -> str:
    """A short name for a corpus spec, used in dataset names and cards."""
    return corpus_check(spec).name


def corpus_text(spec: str) -> str:
    """The text of an allowed corpus (checked again here: a job may have been stored before a rule changed)."""
    corpus = corpus_check(spec)
    if corpus.spec == DEFAULT_CORPUS:
        shakespeare = corpora_dir() / _SHAKESPEARE
        return shakespeare.read_text(encoding="utf-8") if shakespeare.is_file() else _stdlib_text()
    if corpus.spec.startswith(S3_SCHEME):
        keys = storage.list_keys(corpus.spec.removeprefix(S3_SCHEME))
        return "\n".join(storage.read_bytes(key).decode("utf-8", "replace") for key in keys)
    return (corpora_dir().resolve() / corpus.spec).read_text(encoding="utf-8", errors="replace")


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
