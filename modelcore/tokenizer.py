"""Byte-level BPE tokenizer (GPT-2's scheme) trained with `tokenizers`, stored as `vocab.json` + `merges.txt`.

Every byte has a token, so any text encodes; `<|endoftext|>` takes the last id, as in GPT-2.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from tokenizers import Tokenizer as BackendTokenizer
from tokenizers import decoders, models, pre_tokenizers, trainers

EOT = "<|endoftext|>"
VOCAB_FILE, MERGES_FILE = "vocab.json", "merges.txt"
MIN_VOCAB_SIZE = 257  # the 256 byte tokens plus <|endoftext|>
LINES_PER_CHUNK = 1000


class Tokenizer:
    """Wraps a `tokenizers` byte-level BPE with GPT-2's pre-tokenisation and `<|endoftext|>`."""

    def __init__(self, backend: BackendTokenizer) -> None:
        eot_id = backend.token_to_id(EOT)
        if eot_id is None:
            raise ValueError(f"vocabulary has no {EOT} token")
        self.backend = backend
        self.eot_id: int = eot_id
        self.vocab_size: int = backend.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> list[int]:
        return self.backend.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Iterable[int]) -> str:
        # Special tokens are kept: text containing "<|endoftext|>" must round-trip too.
        return self.backend.decode(list(ids), skip_special_tokens=False)

    def save(self, directory: str | os.PathLike[str]) -> None:
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        # The BPE model writes merges.txt; vocab.json is written here so that it also holds <|endoftext|>
        # (GPT-2's encoder.json does; the BPE model alone would leave added tokens out).
        self.backend.model.save(str(out))
        vocab = self.backend.get_vocab(with_added_tokens=True)
        ordered = dict(sorted(vocab.items(), key=lambda item: item[1]))
        (out / VOCAB_FILE).write_text(json.dumps(ordered, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> Tokenizer:
        d = Path(directory)
        for name in (VOCAB_FILE, MERGES_FILE):
            if not (d / name).is_file():
                raise FileNotFoundError(f"tokenizer file {d / name} is missing")
        vocab = json.loads((d / VOCAB_FILE).read_text(encoding="utf-8"))
        if EOT not in vocab:
            raise ValueError(f"{d / VOCAB_FILE} has no {EOT} token")
        if missing := set(pre_tokenizers.ByteLevel.alphabet()) - set(vocab):
            raise ValueError(
                f"{d / VOCAB_FILE} lacks {len(missing)} byte tokens, so some text could not encode"
            )
        backend = _backend(models.BPE.from_file(str(d / VOCAB_FILE), str(d / MERGES_FILE)))
        backend.add_special_tokens([EOT])  # marks the vocabulary's entry special: never split, never merged
        return cls(backend)


def _backend(model: models.BPE) -> BackendTokenizer:
    backend = BackendTokenizer(model)
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)  # GPT-2's regex split
    backend.decoder = decoders.ByteLevel()
    return backend


def train_tokenizer(texts_or_files: Iterable[str | os.PathLike[str]], vocab_size: int) -> Tokenizer:
    """Train on texts (str) and/or files (paths as os.PathLike), to at most vocab_size tokens."""
    if vocab_size < MIN_VOCAB_SIZE:
        raise ValueError(f"vocab_size must be at least {MIN_VOCAB_SIZE}, got {vocab_size}")
    backend = _backend(models.BPE())
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - 1,  # the last id is left for <|endoftext|>
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(_chunks(texts_or_files), trainer)
    backend.add_special_tokens([EOT])  # after training, so that it takes the last id
    return Tokenizer(backend)


def _chunks(texts_or_files: Iterable[str | os.PathLike[str]]) -> Iterator[str]:
    for item in texts_or_files:
        if isinstance(item, str):
            yield item
            continue
        with open(item, encoding="utf-8") as f:
            lines: list[str] = []
            for line in f:
                lines.append(line)
                if len(lines) == LINES_PER_CHUNK:
                    yield "".join(lines)
                    lines.clear()
            yield "".join(lines)
