from datetime import timedelta

import pytest
from django.utils import timezone

from releases.governance import stage_changes, stage_requests
from releases.governance.errors import RequestNotPending
from releases.models import AuditEvent, StageChangeRequest
from releases.roles import NotPolicyStaff
from releases.stage_names import Stage
from tests.releases.conftest import request_change

Status = StageChangeRequest.Status


def test_a_pending_request_can_be_cancelled(size, alice):
    request = request_change(size, alice, Stage.PARTNERS)
    stage_requests.stage_request_cancel(request=request, actor=alice, reason="Filed too early.")
    request.refresh_from_db()
    assert request.status == Status.CANCELLED
    assert AuditEvent.objects.filter(action="stage_request.cancelled", reason="Filed too early.").count() == 1


def test_an_embargoed_change_can_be_cancelled_before_it_applies(size, alice, bob, carol):
    request = request_change(size, alice, Stage.PARTNERS, effective_at=timezone.now() + timedelta(hours=1))
    stage_requests.stage_request_approve(request=request, approver=bob)
    stage_requests.stage_request_cancel(request=request, actor=carol)
    assert stage_changes.stage_changes_apply_due(now=timezone.now() + timedelta(hours=2)) == []
    request.refresh_from_db()
    size.refresh_from_db()
    assert request.status == Status.CANCELLED
    assert size.stage == Stage.INTERNAL


def test_an_applied_request_cannot_be_cancelled(size, alice, bob):
    request = request_change(size, alice, Stage.PARTNERS)
    stage_requests.stage_request_approve(request=request, approver=bob)
    with pytest.raises(RequestNotPending):
        stage_requests.stage_request_cancel(request=request, actor=alice)


def test_only_policy_staff_may_cancel(size, alice, rita):
    request = request_change(size, alice, Stage.PARTNERS)
    with pytest.raises(NotPolicyStaff):
        stage_requests.stage_request_cancel(request=request, actor=rita)
