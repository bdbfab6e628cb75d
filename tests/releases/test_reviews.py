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


def test_a_revisit_leads_to_a_prefilled_stage_change_request_and_notes_show_to_staff(partners_size, carol, client,
                                                                                      rita):
    """Issue #20, defect 4: a "revisit" created nothing, and review notes were visible only as raw audit data."""
    change = _make_overdue(partners_size)
    client.force_login(carol)
    response = client.post(f"/admin/releases/stagechange/{change.pk}/review/",
                           {"outcome": "revisit", "notes": "Misuse reports from two labs.", "next_review_by": ""})
    assert response.status_code == 302 and response["Location"].startswith("/admin/releases/stagechangerequest/add/")
    form = client.get(response["Location"]).content.decode()
    assert "Misuse reports from two labs." in form
    assert f'<option value="{partners_size.pk}" selected>' in form
    page = client.get(f"/models/{partners_size.slug}/").content.decode()
    assert "Stage reviews" in page and "Misuse reports from two labs." in page and "Revisit" in page
    client.force_login(rita)
    assert "Misuse reports" not in client.get(f"/models/{partners_size.slug}/").content.decode()


def test_history_recorded_from_2019_is_not_overdue_until_staff_review_it(db, carol):
    from django.core.management import call_command

    call_command("seed_gpt2", verbosity=0)
    assert StageChange.objects.filter(request__historical=True).exists()
    assert list(selectors.reviews_due()) == []
    size = StageChange.objects.filter(request__historical=True).first().model_size
    reviews.stage_review_record(size=size, reviewer=carol, notes="Looked again in 2026.",
                                next_review_by=timezone.localdate() + timedelta(days=3))
    assert [change.model_size for change in selectors.reviews_due()] == [size]
