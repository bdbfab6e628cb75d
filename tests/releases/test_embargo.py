"""Embargoed changes are applied by the beat task once their effective time has come."""

from datetime import timedelta
from unittest import mock

from django.utils import timezone

from releases.governance import stage_requests
from releases.models import AuditEvent, StageChangeRequest
from releases.stage_names import Stage
from releases.tasks import apply_due_stage_changes_task
from tests.releases.conftest import request_change

Status = StageChangeRequest.Status


def _at(moment):
    return mock.patch("django.utils.timezone.now", return_value=moment)


def _embargoed(size, alice, bob, hours: int = 3):
    effective_at = timezone.now() + timedelta(hours=hours)
    request = request_change(size, alice, Stage.PARTNERS, effective_at=effective_at)
    stage_requests.stage_request_approve(request=request, approver=bob)
    return request, effective_at


def test_the_beat_task_leaves_an_embargoed_change_alone_before_its_time(size, alice, bob):
    request, effective_at = _embargoed(size, alice, bob)
    with _at(effective_at - timedelta(minutes=1)):
        assert apply_due_stage_changes_task() == []
    size.refresh_from_db()
    assert size.stage == Stage.INTERNAL


def test_the_beat_task_applies_it_when_due_and_only_once(size, alice, bob):
    request, effective_at = _embargoed(size, alice, bob)
    with _at(effective_at + timedelta(seconds=30)):
        assert apply_due_stage_changes_task() == [request.pk]
        assert apply_due_stage_changes_task() == []
    request.refresh_from_db()
    size.refresh_from_db()
    assert (request.status, size.stage) == (Status.APPLIED, Stage.PARTNERS)
    applied = AuditEvent.objects.get(action="stage.applied")
    assert applied.actor_label == "system"
    assert request.change.applied_by is None


def test_a_withdrawal_before_the_embargo_lifts_supersedes_it(size, alice, bob, carol):
    request, effective_at = _embargoed(size, alice, bob)
    withdrawal = request_change(size, carol, Stage.WITHDRAWN, factors={})
    stage_requests.stage_request_approve(request=withdrawal, approver=alice)
    with _at(effective_at + timedelta(minutes=1)):
        assert apply_due_stage_changes_task() == []
    request.refresh_from_db()
    size.refresh_from_db()
    assert (request.status, size.stage) == (Status.SUPERSEDED, Stage.WITHDRAWN)
