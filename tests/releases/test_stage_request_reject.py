import pytest

from releases.governance import stage_requests
from releases.governance.errors import InvalidStageRequest, RequestNotPending, SelfApproval
from releases.models import AuditEvent, StageChangeRequest
from releases.stage_names import Stage
from tests.releases.conftest import request_change

Status = StageChangeRequest.Status


def test_any_rejection_ends_the_request(size, alice, bob, carol):
    request = request_change(size, alice, Stage.PUBLIC)
    stage_requests.stage_request_approve(request=request, approver=bob)
    stage_requests.stage_request_reject(request=request, approver=carol, comment="Replication is not imminent.")
    request.refresh_from_db()
    size.refresh_from_db()
    assert request.status == Status.REJECTED
    assert size.stage == Stage.INTERNAL
    with pytest.raises(RequestNotPending):
        stage_requests.stage_request_approve(request=request, approver=carol)


def test_a_rejection_needs_a_comment(size, alice, bob):
    request = request_change(size, alice, Stage.PARTNERS)
    with pytest.raises(InvalidStageRequest):
        stage_requests.stage_request_reject(request=request, approver=bob, comment="  ")
    request.refresh_from_db()
    assert request.status == Status.PENDING


def test_the_requester_cancels_rather_than_rejects(size, alice):
    request = request_change(size, alice, Stage.PARTNERS)
    with pytest.raises(SelfApproval):
        stage_requests.stage_request_reject(request=request, approver=alice, comment="Changed my mind.")


def test_a_rejection_is_audited_with_its_reason(size, alice, bob):
    request = request_change(size, alice, Stage.PARTNERS)
    stage_requests.stage_request_reject(request=request, approver=bob, comment="Partners not yet vetted.", ip="10.0.0.7")
    event = AuditEvent.objects.get(action="stage_request.rejected")
    assert (event.actor_label, event.reason, event.ip) == ("bob", "Partners not yet vetted.", "10.0.0.7")
    assert (event.before, event.after) == ("pending", "rejected")
