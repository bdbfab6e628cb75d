import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelcore.tokenizer import EOT, Tokenizer, train_tokenizer

from .conftest import TEXT


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_any_text_round_trips_through_encode_and_decode(tokenizer, text):
    assert tokenizer.decode(tokenizer.encode(text)) == text


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), min_size=1))
def test_unseen_characters_encode_as_bytes_not_as_unknowns(tokenizer, text):
    ids = tokenizer.encode(text)
    assert all(0 <= i < tokenizer.vocab_size for i in ids)
    assert tokenizer.decode(ids) == text


def test_end_of_text_is_the_last_id_and_encodes_as_one_token(tokenizer):
    assert tokenizer.eot_id == tokenizer.vocab_size - 1
    assert tokenizer.encode(f"a{EOT}b") == [*tokenizer.encode("a"), tokenizer.eot_id, *tokenizer.encode("b")]
    assert tokenizer.decode([tokenizer.eot_id]) == EOT


def test_training_learns_merges_up_to_the_vocabulary_size(tokenizer):
    assert tokenizer.vocab_size == 320
    assert len(tokenizer.encode(TEXT)) < len(TEXT.encode()) / 2  # merges compress the training text


def test_saved_files_are_gpt2s_format_and_load_back_identically(tokenizer, tmp_path):
    tokenizer.save(tmp_path)
    vocab = json.loads((tmp_path / "vocab.json").read_text(encoding="utf-8"))
    assert vocab[EOT] == tokenizer.eot_id and len(vocab) == tokenizer.vocab_size
    assert (tmp_path / "merges.txt").read_text(encoding="utf-8").startswith("#version: 0.2\n")
    loaded = Tokenizer.load(tmp_path)
    assert (loaded.vocab_size, loaded.eot_id) == (tokenizer.vocab_size, tokenizer.eot_id)
    assert loaded.encode(TEXT) == tokenizer.encode(TEXT)


def test_training_reads_files_as_well_as_texts(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT, encoding="utf-8")
    assert train_tokenizer([path], 300).encode(TEXT) == train_tokenizer([TEXT], 300).encode(TEXT)


def test_a_vocabulary_too_small_for_the_bytes_is_refused():
    with pytest.raises(ValueError, match="at least 257"):
        train_tokenizer([TEXT], 256)


def test_loading_a_vocabulary_without_end_of_text_is_refused(tokenizer, tmp_path):
    tokenizer.save(tmp_path)
    vocab = json.loads((tmp_path / "vocab.json").read_text(encoding="utf-8"))
    del vocab[EOT]
    (tmp_path / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    with pytest.raises(ValueError, match="no <\\|endoftext\\|>"):
        Tokenizer.load(tmp_path)
