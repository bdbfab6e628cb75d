"""A tiny trained-looking size registered with real files in S3, for generation and detection tests."""

import pytest

from registry import revisions, services
from workers.bridge import MODEL_FILES

TINY_HPARAMS = {"n_vocab": 320, "n_ctx": 64, "n_embd": 32, "n_head": 2, "n_layer": 2}
TEXT = "\n\n".join(
    f"Speech {i}. " + " ".join(["To be, or not to be, that is the question."] * (1 + i % 4)) for i in range(1200)
)


@pytest.fixture
def corpus_file(tmp_path, settings):
    """TEXT as a file in a corpora folder of this test's own (jobs read corpora from there only)."""
    folder = tmp_path / "corpora"
    folder.mkdir()
    settings.STAGEGATE_CORPORA_DIR = str(folder)
    path = folder / "corpus.txt"
    path.write_text(TEXT)
    return path


@pytest.fixture
def tiny_size(transactional_db, s3, tmp_path):
    """A size whose files are a randomly initialised GPT and a tokenizer trained on TEXT."""
    import torch

    from modelcore.export import export_hf
    from modelcore.model import GPT, GPTConfig
    from modelcore.tokenizer import train_tokenizer

    family = services.family_upsert(slug="tiny", name="Tiny", bundled=True)
    size = services.model_size_upsert(family=family, slug="tiny-1", display_name="1", hparams=TINY_HPARAMS)
    torch.manual_seed(0)
    model = GPT(GPTConfig(**TINY_HPARAMS))
    tokenizer = train_tokenizer([TEXT], TINY_HPARAMS["n_vocab"])
    out = export_hf(model, tokenizer, tmp_path / "tiny-export")
    for name in MODEL_FILES:
        revisions.artifact_register(size=size, path=out / name)
    return size


@pytest.fixture
def untrained_size(transactional_db, s3):
    from registry import services as registry_services

    family = registry_services.family_upsert(slug="tiny", name="Tiny", bundled=True)
    return registry_services.model_size_upsert(family=family, slug="tiny-1", display_name="1", hparams=TINY_HPARAMS)


@pytest.fixture
def mini_family(db, settings, tmp_path):
    """The mini family's sizes, and a corpora folder of this test's own holding `plays.txt`."""
    from registry.seed_data import mini_family_seed

    folder = tmp_path / "corpora"
    folder.mkdir()
    (folder / "plays.txt").write_text("To be, or not to be.\n\n" * 50)
    settings.STAGEGATE_CORPORA_DIR = str(folder)
    mini_family_seed()
    return folder
