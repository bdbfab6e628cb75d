"""Revisions: what partners and the public may download never changes. New files make a new internal revision;
the released one keeps its exact bytes and objects; identical bytes give the identical revision and object."""

import secrets

import pytest

from registry import revisions, services, storage
from registry.models import Artifact, Revision
from registry.revision_ids import revision_id
from releases.models import AuditEvent
from tests.releases.conftest import WEIGHTS, move, upload

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def _objects() -> dict[str, str]:
    """Every stored object's key with its sha256 (its content), to see that none changes."""
    return {key: storage.head(key).sha256 for key in storage.list_keys("")}


def _other_weights(tmp_path, label: str):
    """Weights no other test stores (the session's bucket is shared): the same shapes, other bytes."""
    path = tmp_path / label / "model.safetensors"
    path.parent.mkdir()
    path.write_bytes(WEIGHTS[:-16] + secrets.token_bytes(16))
    return path


def test_identical_bytes_give_the_identical_revision_id_and_one_object(s3, size, tmp_path):
    from tests.releases.conftest import make_size

    first = upload(size, tmp_path)
    twin = make_size("mini-1m-twin")
    again = upload(twin, tmp_path)
    assert first.revision.revision == again.revision.revision  # the same files and hyperparameters
    assert first.s3_key == again.s3_key == storage.blob_key(first.sha256)
    assert revision_id([("model.safetensors", first.bytes, first.sha256)], size.hparams.as_dict()) == \
        first.revision.revision
    assert revisions.revision_create(size=size, files={"model.safetensors": tmp_path / "model.safetensors"},
                                     base=first.revision) == first.revision  # registering it again: nothing new


@pytest.mark.parametrize(("stage", "approvers"), [("partners", ["bob"]), ("public", ["bob", "carol"])])
def test_new_files_for_a_released_size_make_a_new_internal_revision_and_change_nothing_released(
        s3, size, alice, bob, carol, tmp_path, stage, approvers, request):
    released = upload(size, tmp_path).revision
    move(size, stage, requester=alice, approvers=[request.getfixturevalue(name) for name in approvers])
    before = _objects()
    retrained = revisions.artifact_register(size=size, path=_other_weights(tmp_path, "retrained"), replace=True)
    after = _objects()
    assert {key: sha for key, sha in after.items() if key in before} == before  # nothing overwritten or deleted
    assert set(after) - set(before) == {retrained.s3_key}
    new = retrained.revision
    assert (new.stage, new.parent, new.number) == ("internal", released, released.number + 1)
    released.refresh_from_db()
    assert released.stage == stage
    assert [(a.filename, a.sha256) for a in released.artifacts.all()] == [("model.safetensors",
                                                                           storage.sha256_of_file(tmp_path / "model.safetensors"))]


def test_a_revision_is_never_changed_through_the_admin(client, admin_user, s3, size, tmp_path):
    artifact = upload(size, tmp_path)
    client.force_login(admin_user)
    assert client.post(f"/admin/registry/artifact/{artifact.pk}/delete/", {"post": "yes"}).status_code == 403
    assert client.post(f"/admin/registry/revision/{artifact.revision.pk}/delete/", {"post": "yes"}).status_code \
        in (403, 404)
    assert Artifact.objects.filter(pk=artifact.pk).exists() and Revision.objects.filter(pk=artifact.revision.pk)


def test_every_new_revision_is_an_audit_event_with_its_files(s3, size, tmp_path, alice):
    first = upload(size, tmp_path)
    second = revisions.artifact_register(size=size, path=_other_weights(tmp_path, "second"), replace=True, actor=alice)
    events = list(AuditEvent.objects.filter(action="revision.created").order_by("id"))
    made = [event.after["revision"] for event in events]
    assert first.revision.revision in made and second.revision.revision in made
    latest = events[-1]
    assert latest.actor_label == "alice" and latest.data["parent"] == first.revision.revision
    assert latest.after["files"] == [["model.safetensors", second.bytes, second.sha256]]


def test_a_new_size_begins_with_a_revision_without_files(db):
    family = services.family_upsert(slug="gpt9", name="GPT-9")
    size = services.model_size_upsert(family=family, slug="gpt9-1t", display_name="1T",
                                      hparams={"n_vocab": 512, "n_ctx": 64, "n_embd": 32, "n_head": 2, "n_layer": 2})
    [revision] = size.revisions.all()
    assert revision.number == 1 and not revision.artifacts.exists() and revision.stage == "internal"


def test_a_data_removal_request_is_audited_and_emailed_to_the_notify_addresses(client, db, settings):
    from django.core import mail

    from releases.outbox.delivery import dispatch_due

    settings.STAGEGATE_NOTIFY_EMAILS = ["privacy@example.org"]
    response = client.post("/datasets/removal/", {"name": "Ann", "email": "ann@example.org", "text": "My address",
                                                  "reason": "It is personal."})
    assert response.status_code == 302
    assert AuditEvent.objects.filter(action="removal_request.created").exists()
    dispatch_due()
    [message] = [m for m in mail.outbox if "Data-removal request" in m.subject]
    assert message.to == ["privacy@example.org"] and "My address" in message.body
