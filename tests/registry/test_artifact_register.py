"""registry.services.artifact_register: files reach S3 with their sha256 or not at all."""

import hashlib

import pytest
from django.core.exceptions import ValidationError

from registry import revisions, services, storage
from registry.errors import ArtifactExists, UnsafeWeights
from registry.models import Artifact

pytestmark = pytest.mark.integration


@pytest.fixture
def size(db):
    family = services.family_upsert(slug="fam", name="Family")
    return services.model_size_upsert(
        family=family, slug="fam-small", display_name="small",
        hparams={"n_vocab": 256, "n_ctx": 64, "n_embd": 32, "n_head": 2, "n_layer": 2},
    )


def test_registered_file_is_stored_under_a_server_built_key(size, s3, tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{"n_layer": 2}')
    artifact = revisions.artifact_register(size=size, path=path)
    assert artifact.s3_key == f"blobs/sha256/{artifact.sha256}"  # its content's key: the name never reaches it
    assert artifact.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert artifact.bytes == path.stat().st_size
    assert storage.head(artifact.s3_key).sha256 == artifact.sha256
    assert revisions.artifact_verify(artifact=artifact)


def test_wrong_sha256_stores_nothing(size, s3, tmp_path):
    path = tmp_path / "vocab.json"
    path.write_text("{}")
    with pytest.raises(storage.ChecksumMismatch):
        revisions.artifact_register(size=size, path=path, expected_sha256="f" * 64)
    assert not Artifact.objects.exists()


def test_a_second_file_with_the_same_name_is_refused_unless_replacing(size, s3, tmp_path):
    path = tmp_path / "merges.txt"
    path.write_text("#version: 0.2\n")
    first = revisions.artifact_register(size=size, path=path)
    with pytest.raises(ArtifactExists):
        revisions.artifact_register(size=size, path=path)
    path.write_text("#version: 0.2\na b\n")
    second = revisions.artifact_register(size=size, path=path, replace=True)
    assert second.revision.parent == first.revision and second.revision.artifacts.get(filename="merges.txt") == second
    assert second.s3_key != first.s3_key
    assert first.revision.artifacts.get(filename="merges.txt").sha256 == first.sha256  # the earlier revision stays


@pytest.mark.parametrize("name", ["../escape.json", "a/b.json", ".hidden.json", "weights.bin", "x\x00.json", ""])
def test_bad_file_names_and_types_are_refused(size, s3, tmp_path, name):
    path = tmp_path / "f.json"
    path.write_text("{}")
    with pytest.raises((ValidationError, UnsafeWeights)):  # .bin: pickled weights (tests/security)
        revisions.artifact_register(size=size, path=path, filename=name)
    assert not Artifact.objects.exists()


def test_hparams_cannot_change_once_files_exist(size, s3, tmp_path):
    path = tmp_path / "config.json"
    path.write_text("{}")
    revisions.artifact_register(size=size, path=path)
    with pytest.raises(ValidationError, match="cannot change"):
        services.model_size_upsert(
            family=size.family, slug=size.slug, display_name="small",
            hparams={"n_vocab": 256, "n_ctx": 64, "n_embd": 64, "n_head": 2, "n_layer": 2},
        )
