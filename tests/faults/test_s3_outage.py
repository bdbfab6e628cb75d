"""SeaweedFS stopped and started again under the platform: link endpoints answer 503 and record nothing while
it is down, and everything works again once it is back (same data, port and credentials).

Worker uploads during an S3 outage (retry with backoff, then the job fails cleanly with the error recorded)
are covered by tests/workers/test_transient_failures.py.
"""

import time

import pytest
import requests

from registry import revisions
from releases.access import links
from releases.models import AuditEvent, IssuedLink
from tests.releases.conftest import (
    WEIGHTS,
    make_grant,
    make_partner,
    make_size,
    move,
    publish_terms,
    token_for,
    upload,
)

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def test_links_answer_503_and_record_nothing_while_s3_is_down_then_work_after_a_restart(
        api, private_s3, size, alice, bob, pat, tmp_path):
    upload(size, tmp_path)
    partner = make_partner(alice, pat)
    publish_terms(alice, "v1", pat)
    make_grant(partner, size, alice)
    move(size, "partners", requester=alice, approvers=[bob])
    api.credentials(HTTP_AUTHORIZATION=f"Token {token_for(pat)}")
    link_url = f"/api/v1/models/{size.slug}/files/model.safetensors/link/"
    assert api.post(link_url).status_code == 200
    issued, audited = IssuedLink.objects.count(), AuditEvent.objects.filter(action="link.issued").count()

    private_s3.stop()
    time.sleep(links.storage_check_window_s())  # the last successful check no longer vouches for the file
    for response in (api.post(link_url), api.get(f"/api/v1/models/{size.slug}/files/model.safetensors")):
        assert response.status_code == 503
        assert response.json()["error"] == "storage_unavailable"
        assert "unreachable" in response.json()["detail"]
    assert IssuedLink.objects.count() == issued
    assert AuditEvent.objects.filter(action="link.issued").count() == audited
    # The manifest needs no storage: it still answers from the registry.
    assert api.get(f"/api/v1/models/{size.slug}/manifest/").status_code == 200

    private_s3.start()
    response = api.post(link_url)
    assert response.status_code == 200, response.json()
    # SeaweedFS's S3 gateway can answer a moment before its volume server serves reads again.
    deadline = time.monotonic() + 15
    while (download := requests.get(response.json()["url"], timeout=10)).status_code != 200:
        assert time.monotonic() < deadline, download.text
        time.sleep(0.5)
    assert download.content == WEIGHTS
    assert IssuedLink.objects.count() == issued + 1
    # Uploads work again too (to a size still internal: a released size's files never change).
    path = tmp_path / "config.json"
    path.write_text('{"n_layer": 2}')
    artifact = revisions.artifact_register(size=make_size("mini-3m"), path=path)
    assert revisions.artifact_verify(artifact=artifact)


def test_during_an_outage_callers_who_may_not_have_the_file_hear_only_their_refusal(
        api, private_s3, size, alice, bob, pat, rita, tmp_path):
    # `may` speaks before storage is asked: a 503 would tell a stranger that the file exists.
    upload(size, tmp_path)
    link_url = f"/api/v1/models/{size.slug}/files/model.safetensors/link/"
    private_s3.stop()
    # Internal: the same 404 as for no size at all, for anonymous callers and plain accounts alike.
    assert (api.post(link_url).status_code, api.post(link_url).json()["error"]) == (404, "model_size_not_found")
    api.credentials(HTTP_AUTHORIZATION=f"Token {token_for(rita)}")
    assert (api.post(link_url).status_code, api.post(link_url).json()["error"]) == (404, "model_size_not_found")
    make_partner(alice, pat)
    publish_terms(alice, "v1", pat)
    move(size, "partners", requester=alice, approvers=[bob])
    assert api.post(link_url).json()["error"] == "not_a_partner"
    api.credentials(HTTP_AUTHORIZATION=f"Token {token_for(pat)}")
    assert api.post(link_url).json()["error"] == "no_grant"
    api.credentials()
    assert api.post(link_url).json()["error"] == "not_authenticated"
    assert not IssuedLink.objects.exists()


def test_registering_a_file_while_s3_is_down_stores_nothing(private_s3, size, tmp_path):
    from registry.models import Artifact
    from registry.storage import StorageUnavailable

    private_s3.stop()
    path = tmp_path / "config.json"
    path.write_text("{}")
    with pytest.raises(StorageUnavailable):
        revisions.artifact_register(size=size, path=path)
    assert not Artifact.objects.exists()
