"""What partners and the public may download never changes: a size's files are frozen once it leaves `internal`,
through every service, admin page and job. Every change before then is an audit event."""

import pytest

from registry import services, storage
from registry.errors import ArtifactsFrozen
from registry.models import Artifact, ModelSize
from releases.models import AuditEvent
from tests.releases.conftest import WEIGHTS, move, upload

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def _keys() -> list[str]:
    return storage.list_keys("models/")


@pytest.mark.parametrize(("stage", "approvers"), [("partners", ["bob"]), ("public", ["bob", "carol"])])
def test_a_released_sizes_files_cannot_be_replaced_or_added(s3, size, alice, bob, carol, tmp_path, stage, approvers,
                                                            request):
    original = upload(size, tmp_path)
    move(size, stage, requester=alice, approvers=[request.getfixturevalue(name) for name in approvers])
    before = _keys()
    path = tmp_path / "other" / "model.safetensors"
    path.parent.mkdir()
    path.write_bytes(WEIGHTS[:-1] + b"\x01")
    with pytest.raises(ArtifactsFrozen):
        services.artifact_register(size=size, path=path, replace=True)
    extra = tmp_path / "notes.txt"
    extra.write_text("new")
    with pytest.raises(ArtifactsFrozen):
        services.artifact_register(size=size, path=extra)
    assert _keys() == before  # nothing uploaded, nothing overwritten, nothing deleted
    assert list(Artifact.objects.filter(model_size=size)) == [original]
    assert Artifact.objects.get().sha256 == original.sha256


def test_a_release_between_the_upload_and_the_record_refuses_the_file_and_removes_its_object(
        s3, size, alice, bob, tmp_path, monkeypatch):
    upload(size, tmp_path)
    real_upload = storage.upload_file

    def release_meanwhile(path, key, **kwargs):
        stored = real_upload(path, key, **kwargs)
        ModelSize.objects.filter(pk=size.pk).update(stage="partners")  # a release committed during the upload
        return stored

    monkeypatch.setattr(storage, "upload_file", release_meanwhile)
    before = _keys()
    path = tmp_path / "config.json"
    path.write_text("{}")
    with pytest.raises(ArtifactsFrozen):
        services.artifact_register(size=size, path=path)
    assert _keys() == before
    assert not Artifact.objects.filter(filename="config.json").exists()


def test_the_admin_never_deletes_or_edits_a_file(client, admin_user, s3, size, tmp_path):
    artifact = upload(size, tmp_path)
    client.force_login(admin_user)
    assert client.post(f"/admin/registry/artifact/{artifact.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Artifact.objects.filter(pk=artifact.pk).exists()


def test_registering_and_replacing_files_are_audit_events(s3, size, tmp_path, alice):
    first = upload(size, tmp_path)
    again = tmp_path / "again"
    again.mkdir()
    (again / "model.safetensors").write_bytes(WEIGHTS[:-1] + b"\x02")
    second = services.artifact_register(size=size, path=again / "model.safetensors", replace=True, actor=alice)
    registered, replaced = AuditEvent.objects.filter(action__startswith="artifact.").order_by("seq")
    assert (registered.action, registered.after["sha256"]) == ("artifact.registered", first.sha256)
    assert (replaced.action, replaced.actor_label) == ("artifact.replaced", "alice")
    assert replaced.before["sha256"] == first.sha256 and replaced.after["sha256"] == second.sha256


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
