"""Applied stage changes: moving a subject (a revision, a dataset, a whole size) once its request is approved
(now, or when an embargo lifts), and recording changes decided outside this platform (GPT-2's 2019
releases). Each step writes its audit row."""

import calendar
from datetime import date, datetime

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from registry.models import ModelSize
from releases import stages
from releases.audit.chain import audit_record
from releases.governance import notifications
from releases.governance.errors import InvalidTransition, RequestNotApproved, StageConflict
from releases.governance.models import StageChange, StageChangeRequest
from releases.governance.subjects import subject_for, subject_of

Status = StageChangeRequest.Status


def add_months(day: date, months: int) -> date:
    """The same day `months` later, clamped to the month's end (31 Aug + 6 months = 28/29 Feb)."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def default_review_by(applied_at: datetime) -> date:
    return add_months(timezone.localdate(applied_at), stages.review_interval_months())



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
    subject = subject_of(request)
    if not subject.move(from_stage=request.from_stage, to_stage=request.to_stage):
        raise StageConflict(f"{subject.label} is no longer {request.from_stage}: request #{request.pk} cannot "
                            "apply.")
    change = StageChange.objects.create(
        model_size=request.model_size, revision=request.revision, dataset=request.dataset, subject=request.subject,
        request=request, from_stage=request.from_stage, to_stage=request.to_stage, applied_at=now,
        applied_by=actor, review_by=request.review_by or default_review_by(now),
    )
    audit_record(actor=actor, action="stage.applied", target=_audit_target(request), before=request.from_stage,
                 after=request.to_stage, reason=request.rationale, ip=ip,
                 data={"request_id": request.pk, "review_by": change.review_by.isoformat(),
                       "subject": request.subject})
    _supersede_open_requests(applied=request, actor=actor)
    notifications.stage_event_notify(event="stage.applied", request_id=request.pk)
    return change


def _audit_target(request: StageChangeRequest):
    return request.dataset or request.revision or request.model_size


def _supersede_open_requests(*, applied: StageChangeRequest, actor) -> None:
    """Open requests on the subject (a whole size's: on any of its subjects but datasets) that started from a
    stage it has just left can no longer apply."""
    if applied.dataset_id is not None:
        same_subject = Q(dataset=applied.dataset_id)
    elif applied.revision_id is not None:
        same_subject = Q(revision=applied.revision_id) | Q(model_size=applied.model_size_id, revision=None,
                                                           dataset=None)
    else:
        same_subject = Q(model_size=applied.model_size_id, dataset=None)
    stale = StageChangeRequest.objects.filter(same_subject, status__in=StageChangeRequest.OPEN).exclude(
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



@transaction.atomic
def stage_history_record(
    *, size: ModelSize, from_stage: str, to_stage: str, applied_at: datetime, rationale: str,
    public_rationale: str = "", factors: dict | None = None, source: str,
) -> StageChange | None:
    """Record a stage change of the size's newest revision decided outside this platform (e.g. GPT-2 in 2019)
    as applied.

    Not a normal approval: no requester or approver, marked historical, audited as such. Recording
    the same change again does nothing (returns None).
    """
    if StageChange.objects.filter(model_size=size, from_stage=from_stage, to_stage=to_stage,
                                  applied_at=applied_at).exists():
        return None
    if not stages.transition_allowed(from_stage, to_stage):
        raise InvalidTransition(f"{from_stage} → {to_stage} is not an allowed transition.")
    subject = subject_for(size=size)
    if not subject.move(from_stage=from_stage, to_stage=to_stage):
        raise StageConflict(f"{subject.label} is not {from_stage}; record its history in order.")
    request = StageChangeRequest.objects.create(
        model_size=size, revision=subject.revision, subject=subject.snapshot(), from_stage=from_stage,
        to_stage=to_stage, rationale=rationale, public_rationale=public_rationale, factors=factors or {},
        status=Status.APPLIED, approvals_required=0, historical=True, decided_at=applied_at, applied_at=applied_at,
    )
    change = StageChange.objects.create(
        model_size=size, revision=subject.revision, subject=request.subject, request=request, from_stage=from_stage,
        to_stage=to_stage, applied_at=applied_at, review_by=default_review_by(applied_at),
    )
    audit_record(actor=None, action="stage.history_recorded", target=subject.revision, before=from_stage,
                 after=to_stage, reason=rationale,
                 data={"request_id": request.pk, "applied_at": applied_at.isoformat(), "source": source,
                       "subject": request.subject})
    return change
