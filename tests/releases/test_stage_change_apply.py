from datetime import UTC, date, datetime

import pytest

from releases.governance import stage_changes, stage_requests
from releases.governance.errors import RequestNotApproved, StageConflict
from releases.governance.stage_changes import add_months
from releases.models import AuditEvent, StageChange, StageChangeRequest
from releases.stage_names import Stage
from tests.releases.conftest import move, request_change

Status = StageChangeRequest.Status


def test_an_applied_request_cannot_apply_again(size, alice, bob):
    request = move(size, Stage.PARTNERS, requester=alice, approvers=[bob])
    request.refresh_from_db()
    with pytest.raises(RequestNotApproved):
        stage_changes.stage_change_apply(request=request, actor=bob)
    assert StageChange.objects.count() == 1
    assert AuditEvent.objects.filter(action="stage.applied").count() == 1


def test_an_approved_request_conflicts_when_the_size_moved_meanwhile(size, alice, bob):
    request = request_change(size, alice, Stage.PARTNERS)
    StageChangeRequest.objects.filter(pk=request.pk).update(status=Status.APPROVED)
    size.revisions.update(stage=Stage.WITHDRAWN)  # the revision moved meanwhile
    request.refresh_from_db()
    with pytest.raises(StageConflict):
        stage_changes.stage_change_apply(request=request, actor=bob)
    request.refresh_from_db()
    assert (request.status, request.revision.stage) == (Status.APPROVED, Stage.WITHDRAWN)  # rolled back as a whole


def test_every_applied_stage_is_due_for_review_six_months_later(size, alice, bob):
    move(size, Stage.PARTNERS, requester=alice, approvers=[bob])
    change = StageChange.objects.get(model_size=size)
    assert change.review_by == add_months(change.applied_at.date(), 6)


def test_a_request_may_set_its_own_review_date(size, alice, bob):
    request = request_change(size, alice, Stage.PARTNERS, review_by=date(2099, 1, 31))
    stage_requests.stage_request_approve(request=request, approver=bob)
    assert StageChange.objects.get(model_size=size).review_by == date(2099, 1, 31)


def test_going_back_from_public_to_partners_is_withdraw_then_re_release(size, alice, bob, carol):
    move(size, Stage.PUBLIC, requester=alice, approvers=[bob, carol])
    move(size, Stage.WITHDRAWN, requester=bob, approvers=[carol])
    move(size, Stage.PARTNERS, requester=carol, approvers=[alice])
    stages = list(StageChange.objects.filter(model_size=size).values_list("from_stage", "to_stage"))
    assert stages == [("internal", "public"), ("public", "withdrawn"), ("withdrawn", "partners")]


def test_applying_supersedes_other_open_requests_for_the_size(size, alice, bob, carol):
    other = request_change(size, carol, Stage.PUBLIC)
    move(size, Stage.PARTNERS, requester=alice, approvers=[bob])
    other.refresh_from_db()
    assert other.status == Status.SUPERSEDED
    assert AuditEvent.objects.filter(action="stage_request.superseded", target_id=str(other.pk)).exists()


def test_add_months_clamps_to_the_end_of_the_month():
    assert add_months(date(2019, 8, 31), 6) == date(2020, 2, 29)
    assert add_months(date(2019, 2, 14), 6) == date(2019, 8, 14)
    assert add_months(datetime(2019, 11, 5, tzinfo=UTC).date(), 6) == date(2020, 5, 5)
