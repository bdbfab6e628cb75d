"""Training corpora: a local file, or every object under a prefix in our bucket (real SeaweedFS)."""

import secrets

import pytest

from registry import storage
from workers import bridge


def test_an_s3_prefix_is_read_as_its_objects_in_key_order(s3):
    prefix = f"corpora/{secrets.token_hex(4)}/"
    storage.upload_bytes(b"second part\n", prefix + "b.txt")
    storage.upload_bytes("first part, caf\u00e9\n".encode(), prefix + "a.txt")
    storage.upload_bytes(b"not this one\n", f"corpora/{secrets.token_hex(4)}/a.txt")
    assert storage.list_keys(prefix) == [prefix + "a.txt", prefix + "b.txt"]
    assert bridge.corpus_text(f"s3://{prefix}") == "first part, caf\u00e9\n\nsecond part\n"


def test_an_empty_prefix_or_a_missing_file_is_a_clear_error(s3, tmp_path):
    with pytest.raises(FileNotFoundError, match="no objects under s3://corpora/nothing-here/"):
        bridge.corpus_text("s3://corpora/nothing-here/")
    with pytest.raises(FileNotFoundError, match="is not a file"):
        bridge.corpus_text(str(tmp_path / "missing.txt"))
