"""A real Celery worker (consuming from Redis) runs the artifact check against SeaweedFS."""

import pytest

from registry import revisions, services, storage
from registry.tasks import verify_artifact_task

pytestmark = pytest.mark.integration


@pytest.fixture
def artifact(transactional_db, s3, tmp_path):
    family = services.family_upsert(slug="fam", name="Family")
    size = services.model_size_upsert(
        family=family, slug="fam-small", display_name="small",
        hparams={"n_vocab": 256, "n_ctx": 64, "n_embd": 32, "n_head": 2, "n_layer": 2},
    )
    path = tmp_path / "config.json"
    path.write_text('{"n_embd": 32}')
    return revisions.artifact_register(size=size, path=path)


def test_worker_confirms_an_intact_file(artifact, celery_worker_thread):
    assert verify_artifact_task.delay(artifact.pk).get(timeout=30) is True


def test_worker_reports_a_file_replaced_behind_the_registry(artifact, celery_worker_thread):
    storage.upload_bytes(b"different bytes", artifact.s3_key)
    assert verify_artifact_task.delay(artifact.pk).get(timeout=30) is False
