"""POST /api/v1/datasets/{name}/{split}/link/: signed links on the real SeaweedFS, audited, 503 before any write."""

import hashlib
import json

import pytest
import requests

from registry import storage
from releases.models import AuditEvent
from tests.releases.conftest import move, move_dataset

pytestmark = pytest.mark.integration

REASON = "The samples turned out to contain memorised personal data and are withdrawn for review."


def _link(api, name="mini-1m", split="valid"):
    return api.post(f"/api/v1/datasets/{name}/{split}/link/")


def test_a_link_downloads_the_split_as_an_attachment(api, datasets):
    response = _link(api)
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    body = response.json()
    assert set(body) == {"url", "expires_at", "bytes", "sha256"}
    download = requests.get(body["url"], timeout=10)
    assert download.status_code == 200
    assert len(download.content) == body["bytes"] and hashlib.sha256(download.content).hexdigest() == body["sha256"]
    assert download.headers["Content-Disposition"] == 'attachment; filename="mini-1m.valid.jsonl"'
    assert json.loads(download.content.splitlines()[0])["text"].startswith("mini-1m valid line 0")


def test_an_issued_link_is_audited_without_its_url(api, datasets):
    url = _link(api).json()["url"]
    event = AuditEvent.objects.get(action="dataset_link.issued")
    assert not event.actor_id and event.ip == "127.0.0.1" and event.target_label == "mini-1m"
    assert event.data["dataset"] == "mini-1m" and event.data["split"] == "valid" and event.data["anonymous"]
    assert event.data["expires_at"]
    assert url.split("?")[1] not in json.dumps(event.data) and "X-Amz-Signature" not in json.dumps(event.data)


def test_unpublished_datasets_and_unknown_splits_are_404_and_nothing_is_recorded(api, datasets, rita):
    api.force_authenticate(rita)
    assert _link(api, "mini-1m-draft").json()["error"] == "dataset_not_found"
    assert _link(api, "mini-1m", "everything").status_code == 404
    assert _link(api, "mini-1m", "everything").json()["error"] == "split_not_found"
    assert not AuditEvent.objects.filter(action="dataset_link.issued").exists()


def test_staff_may_fetch_an_unpublished_dataset(api, datasets, alice):
    api.force_authenticate(alice)
    assert _link(api, "mini-1m-draft").status_code == 200


def test_storage_unreachable_gives_503_and_nothing_is_recorded(api, datasets, settings):
    settings.S3_ENDPOINT_URL = "http://127.0.0.1:9"  # nothing listens there
    storage._client.cache_clear()
    response = _link(api)
    assert response.status_code == 503 and response.json()["error"] == "storage_unavailable"
    assert not AuditEvent.objects.filter(action="dataset_link.issued").exists()


def test_withdrawing_the_size_does_not_hide_its_published_datasets(api, datasets, public_size, alice, bob):
    move(public_size, "withdrawn", requester=alice, approvers=[bob])
    assert _link(api).status_code == 200
    assert api.get("/api/v1/datasets/mini-1m/").status_code == 200


def test_withdrawing_a_dataset_stops_new_links_at_once_and_is_audited(api, datasets, alice, bob):
    move_dataset(datasets["mini-1m"], "withdrawn", requester=alice, approvers=[bob])
    assert _link(api).status_code == 404
    assert AuditEvent.objects.filter(action="stage.applied", target_type="registry.outputdataset",
                                     after="withdrawn").exists()


def test_a_nul_byte_in_the_split_name_is_a_404_not_a_server_error(api, datasets):
    response = api.post("/api/v1/datasets/mini-1m/va%00lid/link/")
    assert response.status_code == 404 and response.json()["error"] == "split_not_found"
