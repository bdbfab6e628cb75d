"""Training corpora come from an allow-list: the corpora folder (links out of it refused) or s3://corpora/."""

import os
import secrets

import pytest

from registry import storage
from workers import corpora
from workers.corpora import CorpusRefused


@pytest.fixture
def corpora_dir(tmp_path, settings):
    folder = tmp_path / "corpora"
    folder.mkdir()
    settings.STAGEGATE_CORPORA_DIR = str(folder)
    return folder


def test_an_s3_prefix_is_read_as_its_objects_in_key_order(s3):
    prefix = f"corpora/{secrets.token_hex(4)}/"
    storage.upload_bytes(b"second part\n", prefix + "b.txt")
    storage.upload_bytes("first part, caf\u00e9\n".encode(), prefix + "a.txt")
    storage.upload_bytes(b"not this one\n", f"corpora/{secrets.token_hex(4)}/a.txt")
    assert storage.list_keys(prefix) == [prefix + "a.txt", prefix + "b.txt"]
    assert corpora.corpus_text(f"s3://{prefix}") == "first part, caf\u00e9\n\nsecond part\n"


def test_an_empty_prefix_or_a_missing_file_is_a_clear_error(s3, corpora_dir):
    with pytest.raises(CorpusRefused, match="no objects under s3://corpora/nothing-here/"):
        corpora.corpus_text("s3://corpora/nothing-here/")
    with pytest.raises(CorpusRefused, match="is not a file"):
        corpora.corpus_text("missing.txt")


def test_a_file_in_the_corpora_folder_is_read_by_relative_or_absolute_name(corpora_dir):
    (corpora_dir / "plays").mkdir()
    (corpora_dir / "plays" / "hamlet.txt").write_text("To be.")
    assert corpora.corpus_check("plays/hamlet.txt").spec == "plays/hamlet.txt"
    assert corpora.corpus_text(str(corpora_dir / "plays" / "hamlet.txt")) == "To be."


@pytest.mark.parametrize("spec", ["/proc/self/environ", "/etc/shadow", "/etc/passwd", "../outside.txt",
                                  "plays/../../outside.txt", "s3://models/mini-1m/abc/model.safetensors",
                                  "s3://jobs/", "s3://corpora/../models/", "s3://", "s3://corpora/", "",
                                  "a\x00b", 7, None])
def test_anything_outside_the_allow_list_is_refused(corpora_dir, spec, s3):
    (corpora_dir.parent / "outside.txt").write_text("secret")
    with pytest.raises(CorpusRefused):
        corpora.corpus_check(spec)


def test_a_symbolic_link_out_of_the_corpora_folder_is_refused(corpora_dir):
    (corpora_dir.parent / "secret.txt").write_text("the worker's secrets")
    os.symlink(corpora_dir.parent / "secret.txt", corpora_dir / "innocent.txt")
    with pytest.raises(CorpusRefused, match="outside the corpora folder"):
        corpora.corpus_check("innocent.txt")
    os.symlink(corpora_dir.parent, corpora_dir / "up")
    with pytest.raises(CorpusRefused, match="outside the corpora folder"):
        corpora.corpus_check("up/secret.txt")


def test_a_corpus_above_the_size_limit_is_refused_before_it_is_read(corpora_dir, settings, s3):
    settings.STAGEGATE_CORPUS_MAX_BYTES = 10
    (corpora_dir / "big.txt").write_text("x" * 11)
    with pytest.raises(CorpusRefused, match="STAGEGATE_CORPUS_MAX_BYTES"):
        corpora.corpus_check("big.txt")
    prefix = f"corpora/{secrets.token_hex(4)}/"
    storage.upload_bytes(b"y" * 11, prefix + "a.txt")
    with pytest.raises(CorpusRefused, match="STAGEGATE_CORPUS_MAX_BYTES"):
        corpora.corpus_check(f"s3://{prefix}")
