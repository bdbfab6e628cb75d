from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from releases.governance import stage_requests
from releases.governance.errors import AlreadyDecided, RequestNotPending, SelfApproval, StageConflict
from releases.models import AuditEvent, StageChange, StageChangeRequest
from releases.outbox.delivery import dispatch_due
from releases.roles import NotPolicyStaff
from releases.stage_names import Stage
from tests.releases.conftest import move, request_change

Status = StageChangeRequest.Status


def test_requester_cannot_approve_own_request(size, alice):
    request = request_change(size, alice, Stage.PARTNERS)
    with pytest.raises(SelfApproval):
        stage_requests.stage_request_approve(request=request, approver=alice)
    request.refresh_from_db()
    assert request.status == Status.PENDING
    assert not request.decisions.exists()


def test_one_approval_moves_a_size_to_partners(size, alice, bob):
    request = request_change(size, alice, Stage.PARTNERS)
    stage_requests.stage_request_approve(request=request, approver=bob, comment="Partners are ready.")
    request.refresh_from_db()
    size.refresh_from_db()
    assert request.status == Status.APPLIED
    assert size.stage == Stage.PARTNERS
    change = StageChange.objects.get(model_size=size)
    assert (change.from_stage, change.to_stage, change.applied_by) == (Stage.INTERNAL, Stage.PARTNERS, bob)


def test_public_needs_two_approvers(size, alice, bob, carol):
    request = request_change(size, alice, Stage.PUBLIC)
    stage_requests.stage_request_approve(request=request, approver=bob)
    size.refresh_from_db()
    request.refresh_from_db()
    assert (size.stage, request.status) == (Stage.INTERNAL, Status.PENDING)
    stage_requests.stage_request_approve(request=request, approver=carol)
    size.refresh_from_db()
    assert size.stage == Stage.PUBLIC


def test_each_approver_counts_once(size, alice, bob):
    request = request_change(size, alice, Stage.PUBLIC)
    stage_requests.stage_request_approve(request=request, approver=bob)
    with pytest.raises(AlreadyDecided):
        stage_requests.stage_request_approve(request=request, approver=bob)
    size.refresh_from_db()
    assert size.stage == Stage.INTERNAL
    assert request.decisions.count() == 1


def test_superusers_cannot_approve_without_the_group(size, alice, admin_user):
    request = request_change(size, alice, Stage.PARTNERS)
    with pytest.raises(NotPolicyStaff):
        stage_requests.stage_request_approve(request=request, approver=admin_user)


def test_a_request_whose_from_stage_no_longer_matches_cannot_apply(size, alice, bob, carol):
    stale = request_change(size, alice, Stage.PUBLIC)
    stage_requests.stage_request_approve(request=stale, approver=bob)
    move(size, Stage.PARTNERS, requester=carol, approvers=[alice])
    stale.refresh_from_db()
    assert stale.status == Status.SUPERSEDED  # the applied change superseded it
    with pytest.raises(RequestNotPending):
        stage_requests.stage_request_approve(request=stale, approver=carol)
    size.refresh_from_db()
    assert size.stage == Stage.PARTNERS


def test_a_pending_request_on_a_size_that_moved_conflicts(size, alice, bob):
    request = request_change(size, alice, Stage.PARTNERS)
    # Simulate a change made outside the services (e.g. a concurrent transaction that skipped superseding).
    size.revisions.update(stage=Stage.WITHDRAWN)
    with pytest.raises(StageConflict):
        stage_requests.stage_request_approve(request=request, approver=bob)
    request.refresh_from_db()
    assert request.status == Status.PENDING


def test_an_embargoed_request_is_approved_but_not_applied(size, alice, bob):
    request = request_change(size, alice, Stage.PARTNERS, effective_at=timezone.now() + timedelta(hours=2))
    stage_requests.stage_request_approve(request=request, approver=bob)
    request.refresh_from_db()
    size.refresh_from_db()
    assert request.status == Status.APPROVED
    assert size.stage == Stage.INTERNAL


def test_approval_and_application_are_audited(size, alice, bob):
    request = request_change(size, alice, Stage.PARTNERS)
    stage_requests.stage_request_approve(request=request, approver=bob, comment="ok")
    actions = list(AuditEvent.objects.filter(action__startswith="stage").values_list("action", "actor_label"))
    assert actions == [("stage_request.created", "alice"), ("stage_request.approved", "bob"),
                       ("stage.applied", "bob")]
    applied = AuditEvent.objects.get(action="stage.applied")
    assert (applied.before, applied.after) == ("internal", "partners")
    assert applied.target_label == str(size.revisions.get())  # the subject: the revision that moved
    assert applied.data["subject"]["revision"] == size.revisions.get().revision


def test_policy_staff_are_emailed_about_decisions(size, alice, bob):
    request = request_change(size, alice, Stage.PARTNERS)
    stage_requests.stage_request_approve(request=request, approver=bob, comment="Go ahead.")
    mail.outbox.clear()
    assert dispatch_due().sent == 3  # requested, approved, applied
    subjects = [message.subject for message in mail.outbox]
    assert any("approved (1/1)" in subject for subject in subjects)
    assert any("is now partners" in subject for subject in subjects)
    assert "bob approved: Go ahead." in next(m.body for m in mail.outbox if "approved (1/1)" in m.subject)
