"""The staff API for stage-change requests, through URLs with knox tokens."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from releases.models import AuditEvent, StageChangeRequest
from releases.stage_names import Stage
from tests.releases.conftest import ALL_FACTORS, RATIONALE, request_change, token_for

Status = StageChangeRequest.Status


def _as(api, user):
    api.credentials(HTTP_AUTHORIZATION=f"Token {token_for(user)}")
    return api


def _create(api, slug: str, **body):
    payload = {"to_stage": "partners", "rationale": RATIONALE, "factors": ALL_FACTORS, **body}
    return api.post(reverse("model-stage-requests", args=[slug]), payload, format="json")


def test_policy_staff_file_a_request_and_get_its_id(api, size, alice):
    response = _create(_as(api, alice), size.slug, public_rationale="Shared with partners.")
    assert response.status_code == 201, response.json()
    body = response.json()
    request = StageChangeRequest.objects.get(pk=body["id"])
    assert (request.from_stage, request.to_stage, request.status) == ("internal", "partners", "pending")
    assert body["approvals_required"] == 1 and body["approvals"] == 0
    assert body["requested_by"] == "alice"
    assert AuditEvent.objects.get(action="stage_request.created").ip == "127.0.0.1"


def test_anonymous_callers_get_401(api, size):
    assert _create(api, size.slug).status_code == 401


def test_a_researcher_gets_403(api, size, rita):
    response = _create(_as(api, rita), size.slug)
    assert response.status_code == 403
    assert response.json()["error"] == "not_policy_staff"


def test_a_superuser_without_the_group_gets_403_with_a_reason(api, size, admin_user):
    response = _create(_as(api, admin_user), size.slug)
    assert response.status_code == 403
    assert "superusers get no bypass" in response.json()["detail"]
    assert not StageChangeRequest.objects.exists()


def test_an_invalid_request_names_its_fields(api, size, alice):
    response = _create(_as(api, alice), size.slug, to_stage="public", rationale="ok", factors={})
    assert response.status_code == 400
    assert "rationale" in response.json()["fields"]


def test_a_disallowed_transition_is_409(api, size, alice):
    response = _create(_as(api, alice), size.slug, to_stage="internal")
    assert response.status_code == 409
    assert response.json()["error"] == "invalid_transition"


def test_an_unknown_size_is_404(api, alice):
    assert _create(_as(api, alice), "no-such-size").status_code == 404


def test_approving_through_the_api_applies_the_change(api, size, alice, bob):
    request = request_change(size, alice, Stage.PARTNERS)
    response = _as(api, bob).post(reverse("stage-request-approve", args=[request.pk]), {"comment": "Yes."},
                                  format="json")
    assert response.status_code == 200
    assert response.json()["status"] == "applied"
    assert response.json()["decisions"] == [
        {"by": "bob", "verdict": "approve", "comment": "Yes.", "created_at": response.json()["decisions"][0]["created_at"]}
    ]
    size.refresh_from_db()
    assert size.stage == Stage.PARTNERS


def test_approving_your_own_request_is_403(api, size, alice):
    request = request_change(size, alice, Stage.PARTNERS)
    response = _as(api, alice).post(reverse("stage-request-approve", args=[request.pk]), {}, format="json")
    assert response.status_code == 403
    assert response.json()["error"] == "self_approval"
    request.refresh_from_db()
    assert request.status == Status.PENDING


def test_approving_a_decided_request_is_409(api, size, alice, bob, carol):
    request = request_change(size, alice, Stage.PARTNERS)
    _as(api, bob).post(reverse("stage-request-approve", args=[request.pk]), {}, format="json")
    response = _as(api, carol).post(reverse("stage-request-approve", args=[request.pk]), {}, format="json")
    assert response.status_code == 409
    assert response.json()["error"] == "request_not_pending"


def test_rejecting_needs_a_comment(api, size, alice, bob):
    request = request_change(size, alice, Stage.PARTNERS)
    url = reverse("stage-request-reject", args=[request.pk])
    assert _as(api, bob).post(url, {}, format="json").status_code == 400
    response = api.post(url, {"comment": "Not before the detection study."}, format="json")
    assert response.status_code == 200
    request.refresh_from_db()
    assert request.status == Status.REJECTED


def test_cancelling_an_embargoed_request(api, size, alice, bob):
    request = request_change(size, alice, Stage.PARTNERS, effective_at=timezone.now() + timedelta(days=1))
    _as(api, bob).post(reverse("stage-request-approve", args=[request.pk]), {}, format="json")
    response = api.post(reverse("stage-request-cancel", args=[request.pk]), {"reason": "Hold."}, format="json")
    assert response.status_code == 200
    request.refresh_from_db()
    assert request.status == Status.CANCELLED


def test_listing_pending_requests(api, size, alice, bob):
    pending = request_change(size, alice, Stage.PARTNERS)
    decided = request_change(size, alice, Stage.WITHDRAWN, factors={})
    _as(api, bob).post(reverse("stage-request-reject", args=[decided.pk]), {"comment": "No reason to withdraw."}, format="json")
    response = api.get(reverse("stage-request-list"), {"status": "pending"})
    assert response.status_code == 200
    assert [r["id"] for r in response.json()["results"]] == [pending.pk]


def test_listing_requires_policy_staff(api, rita):
    assert _as(api, rita).get(reverse("stage-request-list")).status_code == 403


def test_reviews_through_the_api(api, size, alice, bob, carol):
    request_change(size, alice, Stage.PARTNERS)
    _as(api, bob).post(reverse("stage-request-approve", args=[StageChangeRequest.objects.get().pk]), {},
                       format="json")
    response = _as(api, carol).post(reverse("model-reviews", args=[size.slug]),
                                    {"notes": "Partner reports are reassuring.", "outcome": "keep"}, format="json")
    assert response.status_code == 201
    assert response.json()["stage"] == "partners"


@pytest.mark.parametrize("at, stage", [("2019-03-01", "public"), ("2019-01-01", "internal")])
def test_release_state_on_a_date(api, alice, at, stage):
    call_command("seed_gpt2", stdout=open("/dev/null", "w"))
    response = _as(api, alice).get(reverse("release-state"), {"at": at})
    assert response.status_code == 200
    rows = {row["model"]: row for row in response.json()["sizes"]}
    assert rows["gpt2-124m"]["stage"] == stage
