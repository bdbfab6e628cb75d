"""Reviews: every applied stage has a review-by date; due and overdue ones are reminded and on the dashboard."""

from datetime import date, timedelta

import pytest
from django.core import mail
from django.utils import timezone

from releases.governance import reviews, selectors, stage_changes, stage_requests
from releases.governance.errors import NothingToReview
from releases.models import AuditEvent, StageChange
from releases.outbox.delivery import dispatch_due
from releases.roles import NotPolicyStaff
from releases.stage_names import Stage
from releases.tasks import send_stage_review_reminders_task
from tests.releases.conftest import make_size, move


@pytest.fixture
def partners_size(size, alice, bob):
    move(size, Stage.PARTNERS, requester=alice, approvers=[bob])
    return size


def _make_overdue(size) -> StageChange:
    StageChange.objects.filter(model_size=size).update(review_by=timezone.localdate() - timedelta(days=3))
    return StageChange.objects.get(model_size=size)


def test_recording_a_review_sets_the_next_review_date(partners_size, carol):
    _make_overdue(partners_size)
    review = reviews.stage_review_record(size=partners_size, reviewer=carol, notes="No misuse reported.")
    change = StageChange.objects.get(model_size=partners_size)
    assert change.review_by == review.next_review_by == stage_changes.add_months(timezone.localdate(), 6)
    assert change.last_reviewed_at is not None
    event = AuditEvent.objects.get(action="stage.reviewed")
    assert (event.actor_label, event.reason) == ("carol", "No misuse reported.")


def test_a_size_that_never_moved_has_nothing_to_review(size, carol):
    with pytest.raises(NothingToReview):
        reviews.stage_review_record(size=size, reviewer=carol, notes="n/a")


def test_only_policy_staff_review(partners_size, rita):
    with pytest.raises(NotPolicyStaff):
        reviews.stage_review_record(size=partners_size, reviewer=rita, notes="Looks fine.")


def test_overdue_reviews_are_emailed_to_policy_staff_once_a_day(partners_size, alice):
    _make_overdue(partners_size)
    dispatch_due()  # the notices of the release that made the size partners
    mail.outbox.clear()
    assert send_stage_review_reminders_task() == [StageChange.objects.get().pk]
    dispatch_due()
    assert len(mail.outbox) == 1
    assert "1 stage review(s) due, 1 overdue" in mail.outbox[0].subject
    assert f"mini-1m@{partners_size.revisions.get().short}: partners" in mail.outbox[0].body
    assert "alice@example.org" in mail.outbox[0].to
    assert send_stage_review_reminders_task() == []
    dispatch_due()
    assert len(mail.outbox) == 1


def test_reviews_due_soon_are_reminded_but_not_distant_ones(partners_size, alice, bob, settings):
    settings.STAGEGATE_REVIEW_DUE_SOON_DAYS = 14
    StageChange.objects.filter(model_size=partners_size).update(review_by=timezone.localdate() + timedelta(days=10))
    later = make_size("mini-3m")
    move(later, Stage.PARTNERS, requester=alice, approvers=[bob])  # due in six months
    assert reviews.stage_review_reminders_send() == [StageChange.objects.get(model_size=partners_size).pk]


def test_only_the_current_stage_of_a_size_is_due(partners_size, alice, bob, carol):
    move(partners_size, Stage.PUBLIC, requester=alice, approvers=[bob, carol])
    StageChange.objects.filter(model_size=partners_size, to_stage=Stage.PARTNERS).update(review_by=date(2020, 1, 1))
    assert list(selectors.reviews_due()) == []


def test_the_dashboard_lists_pending_embargoed_and_overdue_items(partners_size, alice, bob):
    _make_overdue(partners_size)
    other = make_size("mini-3m")
    pending = stage_requests.stage_request_create(
        size=other, requester=alice, to_stage=Stage.WITHDRAWN,
        rationale="Withdrawn while a reported jailbreak is investigated by the team.",
    )
    embargoed = stage_requests.stage_request_create(
        size=partners_size, requester=alice, to_stage=Stage.WITHDRAWN,
        rationale="Scheduled withdrawal at the end of the partner research period.",
        effective_at=timezone.now() + timedelta(days=1),
    )
    stage_requests.stage_request_approve(request=embargoed, approver=bob)
    dashboard = selectors.governance_dashboard()
    assert [r.pk for r in dashboard.pending] == [pending.pk]
    assert [r.pk for r in dashboard.embargoed] == [embargoed.pk]
    assert [c.model_size for c in dashboard.overdue_reviews] == [partners_size]
