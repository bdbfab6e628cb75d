"""Public history of a size's applied stage changes, and stage visibility in the model API."""

from django.urls import reverse

from releases.governance import stage_requests
from releases.stage_names import Stage
from tests.releases.conftest import make_size, move, request_change


def test_history_lists_applied_changes_with_the_public_rationale_only(api, size, alice, bob):
    request = request_change(size, alice, Stage.PARTNERS, public_rationale="Shared with four research partners.")
    stage_requests.stage_request_approve(request=request, approver=bob)
    response = api.get(reverse("model-history", args=[size.slug]))
    assert response.status_code == 200
    body = response.json()
    assert body["stage"] == "partners"
    assert [(c["from_stage"], c["to_stage"], c["public_rationale"]) for c in body["changes"]] == [
        ("internal", "partners", "Shared with four research partners.")]
    assert request.rationale not in response.content.decode()
    assert "factors" not in response.content.decode()


def test_history_of_an_internal_size_is_404_to_the_public(api, size):
    assert api.get(reverse("model-history", args=[size.slug])).status_code == 404


def test_internal_sizes_are_hidden_from_everyone_but_staff(api, size, rita, alice):
    assert api.get(reverse("model-detail", args=[size.slug])).status_code == 404
    api.force_authenticate(rita)
    assert api.get(reverse("model-detail", args=[size.slug])).status_code == 404
    assert size.slug not in [m["slug"] for m in api.get(reverse("model-list")).json()["results"]]
    api.force_authenticate(alice)
    assert api.get(reverse("model-detail", args=[size.slug])).json()["stage"] == "internal"


def test_model_list_and_detail_carry_the_stage(api, size, alice, bob, carol):
    move(size, Stage.PUBLIC, requester=alice, approvers=[bob, carol])
    listed = {m["slug"]: m["stage"] for m in api.get(reverse("model-list")).json()["results"]}
    assert listed[size.slug] == "public"
    assert api.get(reverse("model-detail", args=[size.slug])).json()["stage"] == "public"


def test_unapplied_requests_do_not_appear_in_history(api, size, alice, bob, carol):
    move(size, Stage.PUBLIC, requester=alice, approvers=[bob, carol])
    request_change(size, alice, Stage.WITHDRAWN, factors={})
    changes = api.get(reverse("model-history", args=[size.slug])).json()["changes"]
    assert len(changes) == 1



def test_the_public_history_page_shows_visible_sizes_and_public_reasons_only(client, size, alice, bob):
    request = request_change(size, alice, Stage.PARTNERS, public_rationale="Shared with partners.")
    stage_requests.stage_request_approve(request=request, approver=bob)
    back_inside = make_size("mini-3m")
    move(back_inside, Stage.WITHDRAWN, requester=alice, approvers=[bob])
    move(back_inside, Stage.INTERNAL, requester=alice, approvers=[bob])
    html = client.get(reverse("release-history")).content.decode()
    assert "Shared with partners." in html
    assert request.rationale not in html
    assert "mini-3m" not in html
