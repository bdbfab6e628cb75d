"""Tiny configs (2 layers, 32 dims) and a tokenizer trained on a built-in text, so no test needs a corpus."""

from pathlib import Path

import pytest
import torch

from modelcore.model import GPT, GPTConfig
from modelcore.tokenizer import Tokenizer, train_tokenizer

CORPORA = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpora"
TEXT = "\n\n".join(
    f"Speech {i}. "
    + " ".join(["To be, or not to be, that is the question:"] * (1 + i % 3))
    + " Whether 'tis nobler in the mind to suffer the slings and arrows of outrageous fortune. Ünïcödé ✓ 名前"
    for i in range(200)
)


def corpus(relative: str) -> Path:
    """A shared corpus file, or a clean skip on machines without ../shared/corpora."""
    path = CORPORA / relative
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return path


@pytest.fixture(scope="session")
def tokenizer() -> Tokenizer:
    return train_tokenizer([TEXT], 320)


@pytest.fixture(scope="session")
def config(tokenizer) -> GPTConfig:
    return GPTConfig(n_vocab=tokenizer.vocab_size, n_ctx=64, n_embd=32, n_head=2, n_layer=2)


@pytest.fixture
def model(config) -> GPT:
    torch.manual_seed(0)
    return GPT(config).eval()


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest on one thread: a second one mostly waits at barriers, worse on a shared CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
