"""Revisions as release subjects, end to end through the API and SeaweedFS: a new revision of a public size
changes nothing anyone downloads until it is released itself; `?revision=` serves exactly that revision's bytes;
a whole size is withdrawn with every revision."""

import hashlib

import pytest
import requests

from registry import revisions
from registry.models import Revision
from releases.governance import stage_requests
from releases.models import IssuedLink, StageChange
from releases.stage_names import Stage
from tests.releases.conftest import WEIGHTS, move, request_change, token_for, upload

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


@pytest.fixture
def public_with_a_new_revision(s3, size, alice, bob, carol, tmp_path):
    """mini-1m's first weights released to the public, then retrained: a second, internal revision."""
    first = upload(size, tmp_path).revision
    move(size, Stage.PUBLIC, requester=alice, approvers=[bob, carol])
    retrained = tmp_path / "retrained" / "model.safetensors"
    retrained.parent.mkdir()
    retrained.write_bytes(WEIGHTS[:-4] + b"\x00\x01\x02\x03")
    second = revisions.artifact_register(size=size, path=retrained, replace=True).revision
    return {"first": first, "second": second, "first_bytes": WEIGHTS, "second_bytes": retrained.read_bytes()}


def _download(api, size, revision: str | None = None) -> bytes:
    query = f"?revision={revision}" if revision else ""
    link = api.post(f"/api/v1/models/{size.slug}/files/model.safetensors/link/{query}")
    assert link.status_code == 200, link.content
    return requests.get(link.json()["url"], timeout=10).content


def test_a_new_revision_of_a_public_size_changes_nothing_anonymous_callers_get(api, size, public_with_a_new_revision):
    state = public_with_a_new_revision
    manifest = api.get(f"/api/v1/models/{size.slug}/manifest/").json()
    assert manifest["revision"] == state["first"].revision and manifest["stage"] == "public"
    assert _download(api, size) == state["first_bytes"]
    assert api.get(f"/api/v1/models/{size.slug}/manifest/?revision={state['second'].revision}").status_code == 404
    assert [r["revision"] for r in api.get(f"/api/v1/models/{size.slug}/revisions/").json()] == [
        state["first"].revision]


def test_staff_see_every_revision_with_its_stage_and_files(api, size, dora, public_with_a_new_revision):
    state = public_with_a_new_revision
    api.credentials(HTTP_AUTHORIZATION=f"Token {token_for(dora)}")
    listed = api.get(f"/api/v1/models/{size.slug}/revisions/").json()
    numbers = {r["revision"]: (r["number"], r["stage"], r["parent"]) for r in listed}
    assert numbers[state["second"].revision][1:] == ("internal", state["first"].revision)
    assert numbers[state["first"].revision][1] == "public"
    second = next(r for r in listed if r["revision"] == state["second"].revision)
    assert second["files"] == [{"filename": "model.safetensors", "bytes": len(state["second_bytes"]),
                                "sha256": hashlib.sha256(state["second_bytes"]).hexdigest()}]


def test_releasing_the_new_revision_makes_it_the_default_while_the_first_stays_reachable(
        api, size, alice, bob, carol, public_with_a_new_revision):
    state = public_with_a_new_revision
    request = request_change(size, alice, Stage.PUBLIC)  # the newest revision, by default
    assert request.revision == state["second"] and request.subject["revision"] == state["second"].revision
    for approver in (bob, carol):
        request = stage_requests.stage_request_approve(request=request, approver=approver)
    assert api.get(f"/api/v1/models/{size.slug}/manifest/").json()["revision"] == state["second"].revision
    assert _download(api, size) == state["second_bytes"]
    assert _download(api, size, state["first"].revision) == state["first_bytes"]
    assert set(IssuedLink.objects.values_list("revision__revision", flat=True)) == {
        state["first"].revision, state["second"].revision}


def test_an_unknown_or_malformed_revision_is_named(api, size, public_with_a_new_revision):
    unknown = api.get(f"/api/v1/models/{size.slug}/manifest/?revision={'0' * 40}")
    assert unknown.status_code == 404 and unknown.json()["error"] == "revision_not_found"
    malformed = api.get(f"/api/v1/models/{size.slug}/manifest/?revision=main%00")
    assert malformed.status_code == 400 and "revision" in malformed.json()["fields"]


def test_a_whole_size_is_withdrawn_with_every_revision(api, size, alice, bob, carol, public_with_a_new_revision):
    request = stage_requests.stage_request_create(
        size=size, all_revisions=True, requester=alice, to_stage=Stage.WITHDRAWN,
        rationale="Withdrawn with every revision after evidence of misuse at scale was reported by partners.")
    stage_requests.stage_request_approve(request=request, approver=bob)
    assert set(Revision.objects.filter(model_size=size).values_list("stage", flat=True)) == {"withdrawn"}
    size.refresh_from_db()
    assert size.stage == "withdrawn"
    change = StageChange.objects.get(request=request)
    assert change.revision is None and len(change.subject["revisions"]) == 3  # the empty first record too
    refused = api.post(f"/api/v1/models/{size.slug}/files/model.safetensors/link/")
    assert refused.status_code == 403 and refused.json()["error"] == "withdrawn"


def test_a_size_shows_the_highest_stage_any_revision_holds(size, alice, bob, carol, public_with_a_new_revision):
    size.refresh_from_db()
    assert size.stage == "public"  # revision 2 is internal, revision 1 public


PURGE_REASON = "Trained on the wrong corpus shard; never released and nobody downloaded it, so the bytes go."


def _purge(api, size, revision: str, user, reason: str = PURGE_REASON):
    api.credentials(HTTP_AUTHORIZATION=f"Token {token_for(user)}")
    return api.post(f"/api/v1/models/{size.slug}/revisions/{revision}/purge/", {"reason": reason}, format="json")


def test_policy_staff_purge_a_never_released_revision_and_its_objects(
        api, size, alice, public_with_a_new_revision, django_capture_on_commit_callbacks):
    from registry import storage
    from releases.models import AuditEvent

    second = public_with_a_new_revision["second"]
    [key] = second.artifacts.values_list("s3_key", flat=True)
    with django_capture_on_commit_callbacks(execute=True):
        response = _purge(api, size, second.revision, alice)
    assert response.status_code == 200, response.content
    assert response.json() == {"revision": second.revision, "objects_deleted": [key]}
    assert not Revision.objects.filter(pk=second.pk).exists()
    assert storage.list_keys(key) == []
    event = AuditEvent.objects.get(action="revision.purged")
    assert event.actor_label == "alice" and event.before["files"][0][0] == "model.safetensors"
    # The released first revision is untouched and still served.
    assert _download(api, size) == public_with_a_new_revision["first_bytes"]


@pytest.mark.parametrize("why", ["released", "linked", "no reason"])
def test_a_purge_that_would_lose_history_is_refused_and_deletes_nothing(
        api, size, alice, bob, carol, public_with_a_new_revision, why):
    state = public_with_a_new_revision
    target = state["first"] if why == "released" else state["second"]
    if why == "linked":
        api.credentials(HTTP_AUTHORIZATION=f"Token {token_for(alice)}")
        assert api.post(f"/api/v1/models/{size.slug}/files/model.safetensors/link/?revision={target.revision}"
                        ).status_code == 200
    response = _purge(api, size, target.revision, alice, reason="too short" if why == "no reason" else PURGE_REASON)
    assert (response.status_code, response.json()["error"]) == (
        (400, "invalid") if why == "no reason" else (409, "revision_not_purgeable"))
    assert Revision.objects.filter(pk=target.pk).exists()
    assert _download(api, size, target.revision if why != "no reason" else None)


def test_only_policy_staff_may_purge(api, size, steve, rita, public_with_a_new_revision):
    second = public_with_a_new_revision["second"]
    for user in (steve, rita):  # a staff user without the group; a researcher
        response = _purge(api, size, second.revision, user)
        assert response.status_code in (403, 404) and "error" in response.json()
    assert Revision.objects.filter(pk=second.pk).exists()
