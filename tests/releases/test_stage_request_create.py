from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from releases.governance.errors import InvalidStageRequest, InvalidTransition
from releases.models import AuditEvent, StageChangeRequest
from releases.outbox.delivery import dispatch_due
from releases.roles import NotPolicyStaff
from releases.stage_names import Stage
from tests.releases.conftest import ALL_FACTORS, move, request_change


def test_it_records_a_pending_request_from_the_sizes_current_stage(size, alice):
    request = request_change(size, alice, Stage.PARTNERS, public_rationale="Shared with partners.")
    request.refresh_from_db()
    assert request.status == StageChangeRequest.Status.PENDING
    assert (request.from_stage, request.to_stage) == (Stage.INTERNAL, Stage.PARTNERS)
    assert request.approvals_required == 1
    assert request.factors == ALL_FACTORS
    assert request.requested_by == alice


def test_it_writes_an_audit_row(size, alice):
    request = request_change(size, alice, Stage.PARTNERS)
    event = AuditEvent.objects.get(action="stage_request.created")
    assert event.actor_label == "alice"
    assert (event.target_type, event.target_id) == ("releases.stagechangerequest", str(request.pk))
    assert event.after["to_stage"] == "partners"


@pytest.mark.parametrize("who", ["rita", "admin_user"])
def test_only_policy_staff_may_request_and_superusers_get_no_bypass(size, who, request):
    user = request.getfixturevalue(who)
    with pytest.raises(NotPolicyStaff):
        request_change(size, user, Stage.PARTNERS)
    assert not StageChangeRequest.objects.exists()


def test_moving_public_back_to_partners_is_refused(size, alice, bob, carol):
    move(size, Stage.PUBLIC, requester=alice, approvers=[bob, carol])
    with pytest.raises(InvalidTransition):
        request_change(size, alice, Stage.PARTNERS)


def test_it_requires_a_substantive_rationale(size, alice):
    with pytest.raises(InvalidStageRequest) as error:
        request_change(size, alice, Stage.PARTNERS, rationale="looks fine")
    assert "rationale" in error.value.extra["fields"]


def test_a_release_must_assess_every_factor(size, alice):
    factors = dict(ALL_FACTORS)
    del factors["replication"]
    with pytest.raises(InvalidStageRequest) as error:
        request_change(size, alice, Stage.PUBLIC, factors=factors)
    assert list(error.value.extra["fields"]["factors"]) == ["replication"]


def test_unknown_factors_are_refused(size, alice):
    with pytest.raises(InvalidStageRequest):
        request_change(size, alice, Stage.PARTNERS, factors={**ALL_FACTORS, "vibes": "good"})


def test_a_withdrawal_needs_a_rationale_but_not_every_factor(size, alice):
    request = request_change(size, alice, Stage.WITHDRAWN, factors={})
    assert request.to_stage == Stage.WITHDRAWN


def test_an_embargo_must_lie_in_the_future(size, alice):
    with pytest.raises(InvalidStageRequest):
        request_change(size, alice, Stage.PARTNERS, effective_at=timezone.now() - timedelta(minutes=1))


def test_policy_staff_are_emailed_about_a_new_request(size, alice, bob):
    request_change(size, alice, Stage.PARTNERS)
    assert mail.outbox == []  # written to the outbox with the request; sent by the dispatcher
    dispatch_due()
    assert len(mail.outbox) == 1
    assert sorted(mail.outbox[0].to) == ["alice@example.org", "bob@example.org"]
    assert "internal → partners requested by alice" in mail.outbox[0].subject
