"""Stage-change requests: filing one, approving, rejecting and cancelling it.

Each function is one atomic step that also writes its audit row and its notifications (into the outbox, sent
once the transaction has committed). The stage rules come from releases/stages.py.
"""

from datetime import date, datetime

from django.db import transaction
from django.utils import timezone

from registry.models import ModelSize, OutputDataset, Revision
from releases import stages
from releases.audit.chain import audit_record
from releases.governance import factors as release_factors
from releases.governance import notifications
from releases.governance.errors import (
    AlreadyDecided,
    InvalidStageRequest,
    InvalidTransition,
    RequestNotPending,
    SelfApproval,
    StageConflict,
)
from releases.governance.models import StageChangeRequest, StageDecision, StageRequestComment
from releases.governance.stage_changes import stage_change_apply
from releases.governance.subjects import subject_for, subject_of
from releases.roles import DECIDE_STAGE_CHANGE, REQUEST_STAGE_CHANGE, require
from releases.stage_names import Stage

Status = StageChangeRequest.Status


def _locked(request: StageChangeRequest) -> StageChangeRequest:
    # The row lock serialises decisions on one request: concurrent approvers count each other.
    return (
        StageChangeRequest.objects.select_for_update(of=("self",))
        .select_related("model_size", "revision", "dataset")
        .get(pk=request.pk)
    )


def _request_snapshot(request: StageChangeRequest) -> dict:
    return {
        "model": request.model_size.slug if request.model_size else None, "subject": request.subject,
        "from_stage": request.from_stage, "to_stage": request.to_stage,
        "approvals_required": request.approvals_required,
        "effective_at": request.effective_at.isoformat() if request.effective_at else None,
        "review_by": request.review_by.isoformat() if request.review_by else None,
    }



@transaction.atomic
def stage_request_create(
    *, requester, to_stage: str, rationale: str, size: ModelSize | None = None, revision: Revision | None = None,
    dataset: OutputDataset | None = None, all_revisions: bool = False, factors: dict | None = None,
    public_rationale: str = "", effective_at: datetime | None = None, review_by: date | None = None,
    ip: str | None = None,
) -> StageChangeRequest:
    """Ask to move a subject (releases/governance/subjects.py): a revision of `size` (default: its newest),
    a `dataset`, or with `all_revisions` the whole size (to withdraw it)."""
    require(requester, REQUEST_STAGE_CHANGE, to="request stage changes")
    subject = subject_for(size=size, revision=revision, dataset=dataset, all_revisions=all_revisions)
    if to_stage not in Stage.values:
        raise InvalidStageRequest(f"Unknown stage {to_stage!r}.", fields={"to_stage": [f"One of {Stage.values}."]})
    if subject.whole_size and to_stage != Stage.WITHDRAWN:
        raise InvalidStageRequest("A whole size can only be withdrawn; release its revisions one by one.",
                                  fields={"to_stage": ["Only withdrawn, for every revision at once."]})
    from_stage = subject.stage_now()  # as stored now, not as a caller last saw it
    if not stages.transition_allowed(from_stage, to_stage):
        allowed = ", ".join(stages.allowed_targets(from_stage))
        raise InvalidTransition(
            f"{subject.label} is {from_stage}; it may move only to: {allowed}.",
            from_stage=from_stage, to_stage=to_stage,
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
    if subject.dataset is not None:
        revision_stage = subject.dataset.revision.stage if subject.dataset.revision_id else None
        required = stages.approvals_required_for_samples(to_stage, revision_stage=revision_stage)
    else:
        required = stages.approvals_required(to_stage)
    request = StageChangeRequest.objects.create(
        model_size=subject.size, revision=subject.revision, dataset=subject.dataset, subject=subject.snapshot(),
        from_stage=from_stage, to_stage=to_stage, rationale=rationale,
        public_rationale=(public_rationale or "").strip(), factors=cleaned_factors, effective_at=effective_at,
        review_by=review_by, approvals_required=required, requested_by=requester,
    )
    audit_record(actor=requester, action="stage_request.created", target=request,
                 after=_request_snapshot(request), reason=rationale, ip=ip, data={"factors": cleaned_factors})
    notifications.stage_event_notify(event="stage_request.created", request_id=request.pk)
    return request


@transaction.atomic
def stage_request_approve(
    *, request: StageChangeRequest, approver, comment: str = "", ip: str | None = None
) -> StageChangeRequest:
    """Record one approval; the one that reaches the required count approves and (unless embargoed) applies."""
    require(approver, DECIDE_STAGE_CHANGE, to="approve or reject stage changes")
    request = _locked(request)
    if request.status != Status.PENDING:
        raise RequestNotPending(f"Request #{request.pk} is {request.status}; only pending requests take approvals.")
    if request.requested_by_id == approver.pk:
        raise SelfApproval("The requester cannot approve their own request.")
    if request.decisions.filter(decided_by=approver).exists():
        raise AlreadyDecided(f"{approver.get_username()} already approved request #{request.pk}.")
    subject = subject_of(request)
    if (stage := subject.stage_now()) != request.from_stage:
        raise StageConflict(f"{subject.label} is now {stage}, not {request.from_stage}: this request can no "
                            "longer apply.")
    StageDecision.objects.create(request=request, decided_by=approver, verdict=StageDecision.Verdict.APPROVE,
                                 comment=(comment or "").strip(), subject=request.subject)
    approvals = request.decisions.filter(verdict=StageDecision.Verdict.APPROVE).count()
    audit_record(actor=approver, action="stage_request.approved", target=request, reason=comment, ip=ip,
                 data={"approvals": approvals, "approvals_required": request.approvals_required,
                       "subject": request.subject})
    notifications.stage_event_notify(event="stage_request.approved", request_id=request.pk)
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
    require(approver, DECIDE_STAGE_CHANGE, to="approve or reject stage changes")
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
                                 comment=comment, subject=request.subject)
    now = timezone.now()
    StageChangeRequest.objects.filter(pk=request.pk, status=Status.PENDING).update(
        status=Status.REJECTED, decided_at=now
    )
    request.status, request.decided_at = Status.REJECTED, now
    audit_record(actor=approver, action="stage_request.rejected", target=request, before=Status.PENDING,
                 after=Status.REJECTED, reason=comment, ip=ip)
    notifications.stage_event_notify(event="stage_request.rejected", request_id=request.pk)
    return request


@transaction.atomic
def stage_request_cancel(
    *, request: StageChangeRequest, actor, reason: str = "", ip: str | None = None
) -> StageChangeRequest:
    """Withdraw a pending request, or stop an approved one before its embargo lifts."""
    require(actor, REQUEST_STAGE_CHANGE, to="cancel stage-change requests")
    request = _locked(request)
    before = request.status
    if StageChangeRequest.objects.filter(pk=request.pk, status__in=StageChangeRequest.OPEN).update(
        status=Status.CANCELLED, decided_at=timezone.now()
    ) != 1:
        raise RequestNotPending(f"Request #{request.pk} is {request.status}; it can no longer be cancelled.")
    request.refresh_from_db()
    audit_record(actor=actor, action="stage_request.cancelled", target=request, before=before,
                 after=Status.CANCELLED, reason=reason, ip=ip)
    notifications.stage_event_notify(event="stage_request.cancelled", request_id=request.pk)
    return request


@transaction.atomic
def stage_request_comment(*, request: StageChangeRequest, author, text: str,
                          ip: str | None = None) -> StageRequestComment:
    """Add to a request's discussion (policy staff only, at any status: a decided request can still be
    discussed for the record); the other policy staff are told."""
    require(author, DECIDE_STAGE_CHANGE, to="discuss stage-change requests")
    text = (text or "").strip()
    if not text:
        raise InvalidStageRequest("A comment needs some text.", fields={"text": ["This field is required."]})
    comment = StageRequestComment.objects.create(request=request, author=author, text=text)
    audit_record(actor=author, action="stage_request.commented", target=request, reason=text, ip=ip,
                 data={"comment_id": comment.pk})
    notifications.stage_event_notify(event="stage_request.commented", request_id=request.pk)
    return comment
