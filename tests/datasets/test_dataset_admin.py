"""Publishing and unpublishing datasets in the admin: a reason form, the audited services, errors as messages."""

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME

from registry.models import OutputDataset
from releases.models import AuditEvent

pytestmark = pytest.mark.integration
URL = "/admin/releases/datasetpublication/"
REASON = "Detection researchers need these samples before the size's weights are released."


def _act(client, action, dataset, **data):
    return client.post(URL, {"action": action, ACTION_CHECKBOX_NAME: [dataset.pk], **data}, follow=True)


def test_publishing_shows_a_form_with_an_optional_reason_then_calls_the_audited_service(client, datasets, alice):
    client.force_login(alice)
    draft = datasets["mini-1m-draft"]
    form = _act(client, "publish", draft)
    assert "Publish although the size is not public" in form.content.decode()
    done = _act(client, "publish", draft, reason="")
    assert "Publish datasets: 1 done." in done.content.decode()
    draft.refresh_from_db()
    assert draft.published_at is not None
    assert AuditEvent.objects.filter(action="dataset.published", target_label="mini-1m-draft", actor_label="alice")


def test_samples_of_an_unreleased_size_need_the_explicit_decision(client, s3, alice):
    from tests.datasets.conftest import register
    from tests.releases.conftest import make_size

    dataset = register("mini-7m", size=make_size("mini-7m"))
    client.force_login(alice)
    refused = _act(client, "publish", dataset, reason="")
    assert "publishing its samples needs an explicit decision" in refused.content.decode()
    assert OutputDataset.objects.get(pk=dataset.pk).published_at is None
    _act(client, "publish", dataset, reason=REASON, despite_unreleased_size="on")
    event = AuditEvent.objects.get(action="dataset.published")
    assert event.data["despite_unreleased_size"] is True and event.reason == REASON


def test_unpublishing_needs_a_reason(client, datasets, bob):
    client.force_login(bob)
    pure = datasets["mini-1m"]
    assert "This field is required" in _act(client, "unpublish", pure, reason="").content.decode()
    _act(client, "unpublish", pure, reason="The size was withdrawn and its samples show the withdrawn behaviour.")
    pure.refresh_from_db()
    assert pure.published_at is None and AuditEvent.objects.filter(action="dataset.unpublished").exists()


def test_dataset_data_is_read_only_in_the_admin(client, datasets, alice):
    client.force_login(alice)
    page = client.get(f"{URL}{datasets['mini-1m'].pk}/change/").content.decode()
    assert "mini-1m" in page and 'name="card"' not in page
    assert client.get("/admin/registry/datasetsplit/").status_code == 200
    assert client.get("/admin/registry/detectionresult/").status_code == 200
