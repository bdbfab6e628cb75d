"""Writes of release governance: stage-change requests, decisions, application, reviews, recorded history.

Every function here is one atomic step that also writes its audit row; emails and webhooks are
queued only after the transaction commits. Stage rules come from releases/stages.py.
"""

import calendar
from datetime import date, datetime
from functools import partial

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from registry.models import ModelSize
from releases import factors as release_factors
from releases import stages
from releases.audit import audit_record
from releases.errors import (
    AlreadyDecided,
    InvalidStageRequest,
    InvalidTransition,
    NothingToReview,
    NotPolicyStaff,
    RequestNotApproved,
    RequestNotPending,
    SelfApproval,
    StageConflict,
)
from releases.models import StageChange, StageChangeRequest, StageDecision, StageReview
from releases.roles import is_policy_staff
from releases.stages import Stage

Status = StageChangeRequest.Status


# --------------------------------------------------------------------------- helpers
def add_months(day: date, months: int) -> date:
    """The same day `months` later, clamped to the month's end (31 Aug + 6 months = 28/29 Feb)."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def default_review_by(applied_at: datetime) -> date:
    return add_months(timezone.localdate(applied_at), stages.review_interval_months())


def require_policy_staff(user) -> None:
    # Superusers get no bypass: release decisions need membership of the policy-staff group.
    if not is_policy_staff(user):
        raise NotPolicyStaff("Only members of the policy-staff group may request or decide stage changes.")


def _after_commit(event: str, request_id: int) -> None:
    from workers.tasks import notify_stage_event_task  # workers depend on services, not the reverse

    transaction.on_commit(partial(notify_stage_event_task.delay, event, request_id))


def _locked(request: StageChangeRequest) -> StageChangeRequest:
    # The row lock serialises decisions on one request: concurrent approvers count each other.
    return (
        StageChangeRequest.objects.select_for_update(of=("self",))
        .select_related("model_size")
        .get(pk=request.pk)
    )


def _request_snapshot(request: StageChangeRequest) -> dict:
    return {
        "model": request.model_size.slug, "from_stage": request.from_stage, "to_stage": request.to_stage,
        "approvals_required": request.approvals_required,
        "effective_at": request.effective_at.isoformat() if request.effective_at else None,
        "review_by": request.review_by.isoformat() if request.review_by else None,
    }


# --------------------------------------------------------------------------- requests
@transaction.atomic
def stage_request_create(
    *, size: ModelSize, requester, to_stage: str, rationale: str, factors: dict | None = None,
    public_rationale: str = "", effective_at: datetime | None = None, review_by: date | None = None,
    ip: str | None = None,
) -> StageChangeRequest:
    require_policy_staff(requester)
    size = ModelSize.objects.get(pk=size.pk)  # the stage as stored now, not as a caller last saw it
    if to_stage not in Stage.values:
        raise InvalidStageRequest(f"Unknown stage {to_stage!r}.", fields={"to_stage": [f"One of {Stage.values}."]})
    if not stages.transition_allowed(size.stage, to_stage):
        allowed = ", ".join(stages.allowed_targets(size.stage))
        raise InvalidTransition(
            f"{size.slug} is {size.stage}; it may move only to: {allowed}.",
            from_stage=size.stage, to_stage=to_stage,
        )
    rationale = release_factors.rationale_validate(rationale)
    cleaned_factors = release_factors.factors_validate(
        factors or {}, all_required=stages.factors_required(to_stage)
    )
    now = timezone.now()
    if effective_at is not None and effective_at <= now:
        raise InvalidStageRequest("The effective time must be in the future; leave it out to apply on approval.",
                                  fields={"effective_at": ["Must be in the future."]})
    earliest_review = timezone.localdate(effective_at or now)
    if review_by is not None and review_by <= earliest_review:
        raise InvalidStageRequest("The review date must come after the change takes effect.",
                                  fields={"review_by": ["Must be after the effective date."]})
    request = StageChangeRequest.objects.create(
        model_size=size, from_stage=size.stage, to_stage=to_stage, rationale=rationale,
        public_rationale=(public_rationale or "").strip(), factors=cleaned_factors, effective_at=effective_at,
        review_by=review_by, approvals_required=stages.approvals_required(to_stage), requested_by=requester,
    )
    audit_record(actor=requester, action="stage_request.created", target=request,
                 after=_request_snapshot(request), reason=rationale, ip=ip, data={"factors": cleaned_factors})
    _after_commit("stage_request.created", request.pk)
    return request


@transaction.atomic
def stage_request_approve(
    *, request: StageChangeRequest, approver, comment: str = "", ip: str | None = None
) -> StageChangeRequest:
    """Record one approval; the one that reaches the required count approves and (unless embargoed) applies."""
    require_policy_staff(approver)
    request = _locked(request)
    if request.status != Status.PENDING:
        raise RequestNotPending(f"Request #{request.pk} is {request.status}; only pending requests take approvals.")
    if request.requested_by_id == approver.pk:
        raise SelfApproval("The requester cannot approve their own request.")
    if request.decisions.filter(decided_by=approver).exists():
        raise AlreadyDecided(f"{approver.get_username()} already approved request #{request.pk}.")
    if request.model_size.stage != request.from_stage:
        raise StageConflict(f"{request.model_size.slug} is now {request.model_size.stage}, "
                            f"not {request.from_stage}: this request can no longer apply.")
    StageDecision.objects.create(request=request, decided_by=approver, verdict=StageDecision.Verdict.APPROVE,
                                 comment=(comment or "").strip())
    approvals = request.decisions.filter(verdict=StageDecision.Verdict.APPROVE).count()
    audit_record(actor=approver, action="stage_request.approved", target=request, reason=comment, ip=ip,
                 data={"approvals": approvals, "approvals_required": request.approvals_required})
    _after_commit("stage_request.approved", request.pk)
    if approvals < request.approvals_required:
        return request
    now = timezone.now()
    if StageChangeRequest.objects.filter(pk=request.pk, status=Status.PENDING).update(
        status=Status.APPROVED, decided_at=now
    ) != 1:
        raise RequestNotPending(f"Request #{request.pk} was decided concurrently.")
    request.status, request.decided_at = Status.APPROVED, now
    if request.effective_at is None or request.effective_at <= now:
        stage_change_apply(request=request, actor=approver, ip=ip)
        request.refresh_from_db()
    return request


@transaction.atomic
def stage_request_reject(
    *, request: StageChangeRequest, approver, comment: str, ip: str | None = None
) -> StageChangeRequest:
    """Any one rejection ends a pending request. The comment is required: it is the reason on record."""
    require_policy_staff(approver)
    comment = (comment or "").strip()
    if not comment:
        raise InvalidStageRequest("A rejection needs a comment.", fields={"comment": ["This field is required."]})
    request = _locked(request)
    if request.status != Status.PENDING:
        raise RequestNotPending(f"Request #{request.pk} is {request.status}; only pending requests can be rejected.")
    if request.requested_by_id == approver.pk:
        raise SelfApproval("The requester cannot decide their own request; cancel it instead.")
    if request.decisions.filter(decided_by=approver).exists():
        raise AlreadyDecided(f"{approver.get_username()} already decided request #{request.pk}.")
    StageDecision.objects.create(request=request, decided_by=approver, verdict=StageDecision.Verdict.REJECT,
                                 comment=comment)
    now = timezone.now()
    StageChangeRequest.objects.filter(pk=request.pk, status=Status.PENDING).update(
        status=Status.REJECTED, decided_at=now
    )
    request.status, request.decided_at = Status.REJECTED, now
    audit_record(actor=approver, action="stage_request.rejected", target=request, before=Status.PENDING,
                 after=Status.REJECTED, reason=comment, ip=ip)
    _after_commit("stage_request.rejected", request.pk)
    return request


@transaction.atomic
def stage_request_cancel(
    *, request: StageChangeRequest, actor, reason: str = "", ip: str | None = None
) -> StageChangeRequest:
    """Withdraw a pending request, or stop an approved one before its embargo lifts."""
    require_policy_staff(actor)
    request = _locked(request)
    before = request.status
    if StageChangeRequest.objects.filter(pk=request.pk, status__in=StageChangeRequest.OPEN).update(
        status=Status.CANCELLED, decided_at=timezone.now()
    ) != 1:
        raise RequestNotPending(f"Request #{request.pk} is {request.status}; it can no longer be cancelled.")
    request.refresh_from_db()
    audit_record(actor=actor, action="stage_request.cancelled", target=request, before=before,
                 after=Status.CANCELLED, reason=reason, ip=ip)
    _after_commit("stage_request.cancelled", request.pk)
    return request


# --------------------------------------------------------------------------- applying
@transaction.atomic
def stage_change_apply(*, request: StageChangeRequest, actor=None, ip: str | None = None) -> StageChange:
    """Move the size to the approved stage. `actor` is the final approver, or None for the embargo task."""
    now = timezone.now()
    if request.effective_at is not None and request.effective_at > now:
        raise RequestNotApproved(f"Request #{request.pk} is embargoed until {request.effective_at.isoformat()}.")
    # Conditional UPDATEs: a concurrent or retried caller changes 0 rows and gets a conflict.
    if StageChangeRequest.objects.filter(pk=request.pk, status=Status.APPROVED).update(
        status=Status.APPLIED, applied_at=now
    ) != 1:
        raise RequestNotApproved(f"Request #{request.pk} is not approved, or was already applied.")
    size = request.model_size
    if ModelSize.objects.filter(pk=size.pk, stage=request.from_stage).update(stage=request.to_stage) != 1:
        raise StageConflict(f"{size.slug} is no longer {request.from_stage}: request #{request.pk} cannot apply.")
    change = StageChange.objects.create(
        model_size=size, request=request, from_stage=request.from_stage, to_stage=request.to_stage,
        applied_at=now, applied_by=actor, review_by=request.review_by or default_review_by(now),
    )
    audit_record(actor=actor, action="stage.applied", target=size, before=request.from_stage,
                 after=request.to_stage, reason=request.rationale, ip=ip,
                 data={"request_id": request.pk, "review_by": change.review_by.isoformat()})
    _supersede_open_requests(size=size, applied=request, actor=actor)
    _after_commit("stage.applied", request.pk)
    return change


def _supersede_open_requests(*, size: ModelSize, applied: StageChangeRequest, actor) -> None:
    stale = StageChangeRequest.objects.filter(model_size=size, status__in=StageChangeRequest.OPEN).exclude(
        Q(pk=applied.pk) | Q(from_stage=applied.to_stage)
    )
    for other in stale.select_for_update(of=("self",)):
        if StageChangeRequest.objects.filter(pk=other.pk, status=other.status).update(
            status=Status.SUPERSEDED, decided_at=timezone.now()
        ) == 1:
            audit_record(actor=actor, action="stage_request.superseded", target=other, before=other.status,
                         after=Status.SUPERSEDED, data={"by_request_id": applied.pk})


def stage_changes_apply_due(*, now: datetime | None = None) -> list[int]:
    """Apply every approved request whose embargo has lifted; returns the applied request ids (idempotent)."""
    now = now or timezone.now()
    applied: list[int] = []
    due = StageChangeRequest.objects.filter(status=Status.APPROVED, effective_at__lte=now).select_related(
        "model_size"
    )
    for request in due.order_by("effective_at", "pk"):
        try:
            stage_change_apply(request=request, actor=None)
        except StageConflict:
            _request_supersede_stale(request)
        except RequestNotApproved:
            continue  # applied or cancelled by someone else meanwhile
        else:
            applied.append(request.pk)
    return applied


@transaction.atomic
def _request_supersede_stale(request: StageChangeRequest) -> None:
    if StageChangeRequest.objects.filter(pk=request.pk, status=Status.APPROVED).update(
        status=Status.SUPERSEDED
    ) == 1:
        audit_record(actor=None, action="stage_request.superseded", target=request, before=Status.APPROVED,
                     after=Status.SUPERSEDED, reason="The size's stage changed before the embargo lifted.")


# --------------------------------------------------------------------------- reviews
@transaction.atomic
def stage_review_record(
    *, size: ModelSize, reviewer, notes: str, outcome: str = StageReview.Outcome.KEEP,
    next_review_by: date | None = None, ip: str | None = None,
) -> StageReview:
    """Review the size's current stage and set when it is next due (default: the review interval)."""
    require_policy_staff(reviewer)
    notes = (notes or "").strip()
    if not notes:
        raise InvalidStageRequest("A review needs notes.", fields={"notes": ["This field is required."]})
    if outcome not in StageReview.Outcome.values:
        raise InvalidStageRequest(f"Unknown outcome {outcome!r}.", fields={"outcome": [str(StageReview.Outcome.values)]})
    change = (
        StageChange.objects.select_for_update().filter(model_size=size).order_by("-applied_at", "-id").first()
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
    from releases import notifications
    from releases.selectors import reviews_due

    today = today or timezone.localdate()
    reminded: list[StageChange] = []
    for change in reviews_due(today=today):
        # Conditional UPDATE: a second run the same day (or a concurrent one) sends nothing twice.
        if StageChange.objects.filter(pk=change.pk).exclude(reminded_on=today).update(reminded_on=today) == 1:
            reminded.append(change)
    if reminded:
        notifications.review_reminder_email(changes=reminded, today=today)
    return [change.pk for change in reminded]


# --------------------------------------------------------------------------- recorded history
@transaction.atomic
def stage_history_record(
    *, size: ModelSize, from_stage: str, to_stage: str, applied_at: datetime, rationale: str,
    public_rationale: str = "", factors: dict | None = None, source: str,
) -> StageChange | None:
    """Record a stage change decided outside this platform (e.g. GPT-2 in 2019) as applied.

    Not a normal approval: no requester or approver, marked historical, audited as such. Recording
    the same change again does nothing (returns None).
    """
    if StageChange.objects.filter(model_size=size, from_stage=from_stage, to_stage=to_stage,
                                  applied_at=applied_at).exists():
        return None
    if not stages.transition_allowed(from_stage, to_stage):
        raise InvalidTransition(f"{from_stage} → {to_stage} is not an allowed transition.")
    if ModelSize.objects.filter(pk=size.pk, stage=from_stage).update(stage=to_stage) != 1:
        raise StageConflict(f"{size.slug} is not {from_stage}; record its history in order.")
    request = StageChangeRequest.objects.create(
        model_size=size, from_stage=from_stage, to_stage=to_stage, rationale=rationale,
        public_rationale=public_rationale, factors=factors or {}, status=Status.APPLIED, approvals_required=0,
        historical=True, decided_at=applied_at, applied_at=applied_at,
    )
    change = StageChange.objects.create(
        model_size=size, request=request, from_stage=from_stage, to_stage=to_stage, applied_at=applied_at,
        review_by=default_review_by(applied_at),
    )
    audit_record(actor=None, action="stage.history_recorded", target=size, before=from_stage, after=to_stage,
                 reason=rationale, data={"request_id": request.pk, "applied_at": applied_at.isoformat(),
                                         "source": source})
    size.stage = to_stage
    return change
