"""Periodic reviews of a size's current stage, and the reminders that they are due."""

from datetime import date

from django.db import transaction
from django.utils import timezone

from registry.models import ModelSize
from releases import stages
from releases.audit.chain import audit_record
from releases.governance import notifications
from releases.governance.errors import InvalidStageRequest, NothingToReview
from releases.governance.models import StageChange, StageReview
from releases.governance.selectors import reviews_due
from releases.governance.stage_changes import add_months
from releases.roles import REVIEW_STAGE, require


@transaction.atomic
def stage_review_record(
    *, size: ModelSize, reviewer, notes: str, outcome: str = StageReview.Outcome.KEEP,
    next_review_by: date | None = None, ip: str | None = None,
) -> StageReview:
    """Review the size's current stage and set when it is next due (default: the review interval)."""
    require(reviewer, REVIEW_STAGE, to="record stage reviews")
    notes = (notes or "").strip()
    if not notes:
        raise InvalidStageRequest("A review needs notes.", fields={"notes": ["This field is required."]})
    if outcome not in StageReview.Outcome.values:
        raise InvalidStageRequest(f"Unknown outcome {outcome!r}.", fields={"outcome": [str(StageReview.Outcome.values)]})
    change = (
        StageChange.objects.select_for_update().filter(model_size=size, dataset=None).order_by("-applied_at", "-id").first()
    )
    if change is None:
        raise NothingToReview(f"{size.slug} has never changed stage; there is nothing to review.")
    today = timezone.localdate()
    next_review_by = next_review_by or add_months(today, stages.review_interval_months())
    if next_review_by <= today:
        raise InvalidStageRequest("The next review must be in the future.",
                                  fields={"next_review_by": ["Must be after today."]})
    review = StageReview.objects.create(change=change, reviewed_by=reviewer, outcome=outcome, notes=notes,
                                        next_review_by=next_review_by)
    before = change.review_by
    StageChange.objects.filter(pk=change.pk).update(
        review_by=next_review_by, last_reviewed_at=timezone.now(), reminded_on=None
    )
    audit_record(actor=reviewer, action="stage.reviewed", target=size, before={"review_by": before.isoformat()},
                 after={"review_by": next_review_by.isoformat(), "stage": change.to_stage}, reason=notes, ip=ip,
                 data={"outcome": outcome, "change_id": change.pk})
    return review


def stage_review_reminders_send(*, today: date | None = None) -> list[int]:
    """Email policy staff about reviews due soon or overdue, once per change per day; returns the change ids."""
    today = today or timezone.localdate()
    reminded: list[StageChange] = []
    for change in reviews_due(today=today):
        # Conditional UPDATE: a second run the same day (or a concurrent one) sends nothing twice.
        if StageChange.objects.filter(pk=change.pk).exclude(reminded_on=today).update(reminded_on=today) == 1:
            reminded.append(change)
    if reminded:
        notifications.review_reminder_email(changes=reminded, today=today)
    return [change.pk for change in reminded]
