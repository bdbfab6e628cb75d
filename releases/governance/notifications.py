"""What people are told about release events: emails to policy staff (and STAGEGATE_NOTIFY_EMAILS), signed
webhooks, notices to partners who lose access, review reminders and data-removal requests.

Each function composes its messages into the outbox (releases/outbox/) inside the caller's transaction;
the outbox's dispatcher sends them after commit, retrying until they go out.
"""

from collections.abc import Iterable
from datetime import date

from django.conf import settings
from django.utils import timezone

from releases.access.models import AccessGrant, PartnerMember
from releases.governance.models import StageChange, StageChangeRequest
from releases.outbox.delivery import email_enqueue, webhooks_enqueue
from releases.roles import DECIDE_STAGE_CHANGE, holders
from releases.stage_names import Stage

_SUBJECTS = {
    "stage_request.created": "{size}: {from_stage} → {to_stage} requested by {requester}",
    "stage_request.approved": "{size}: {from_stage} → {to_stage} approved ({approvals}/{required})",
    "stage_request.rejected": "{size}: {from_stage} → {to_stage} rejected",
    "stage_request.cancelled": "{size}: {from_stage} → {to_stage} cancelled",
    "stage_request.commented": "{size}: {from_stage} → {to_stage}: {commenter} commented",
    "stage.applied": "{size} is now {to_stage}",
}


def staff_emails() -> list[str]:
    """Who hears of release events: policy staff who decide them, and the addresses in STAGEGATE_NOTIFY_EMAILS."""
    decide = holders(DECIDE_STAGE_CHANGE).exclude(email="").values_list("email", flat=True)
    return sorted({*decide, *settings.STAGEGATE_NOTIFY_EMAILS})


def _admin_url(request: StageChangeRequest) -> str:
    return f"{settings.SITE_URL}/admin/releases/stagechangerequest/{request.pk}/change/"


def stage_event_notify(*, event: str, request_id: int) -> None:
    """Email policy staff about the event and queue one signed webhook per configured URL (in the outbox)."""
    request = StageChangeRequest.objects.select_related("model_size", "revision", "dataset", "requested_by").get(
        pk=request_id)
    approvals = request.decisions.filter(verdict="approve").count()
    last_comment = request.comments.select_related("author").last()
    context = {
        "commenter": last_comment.author.get_username() if last_comment else "",
        "size": request.subject_label, "from_stage": request.from_stage, "to_stage": request.to_stage,
        "requester": request.requested_by.get_username() if request.requested_by else "history",
        "approvals": approvals, "required": request.approvals_required,
    }
    subject = "[Stagegate] " + _SUBJECTS.get(event, event).format(**context)
    lines = [
        f"Request #{request.pk}: {request.subject_label} from {request.from_stage} to {request.to_stage}.",
        f"Status: {request.get_status_display()}. Approvals: {approvals} of {request.approvals_required}.",
    ]
    if request.effective_at:
        lines.append(f"Embargoed until {request.effective_at.isoformat()}.")
    last_decision = request.decisions.select_related("decided_by").last()
    if event in ("stage_request.approved", "stage_request.rejected") and last_decision is not None:
        lines.append(f"{last_decision.decided_by.get_username()} {last_decision.verdict}d: "
                     f"{last_decision.comment or '(no comment)'}")
    if event == "stage_request.commented" and last_comment is not None:
        lines += ["", f"{last_comment.author.get_username()} wrote:", last_comment.text]
    lines += ["", "Rationale:", request.rationale, "", f"Review it: {_admin_url(request)}"]
    email_enqueue(event=event, subject=subject, body="\n".join(lines), recipients=staff_emails())

    payload = {
        "event": event, "request_id": request.pk, "model": request.model_size.slug if request.model_size else None,
        "revision": request.revision.revision if request.revision else None,
        "dataset": request.dataset.name if request.dataset else None,
        "from_stage": request.from_stage, "to_stage": request.to_stage, "status": request.status,
        "effective_at": request.effective_at.isoformat() if request.effective_at else None,
        "public_rationale": request.public_rationale,
    }
    webhooks_enqueue(event=event, payload=payload)
    if event == "stage.applied" and request.to_stage == Stage.WITHDRAWN and request.dataset_id is None:
        grantees_notify_withdrawal(request=request)


def grantees_notify_withdrawal(*, request: StageChangeRequest) -> int:
    """Email the members of partners holding an active grant for the withdrawn size: no new links will be
    issued, and links already issued stop working when they expire. Returns the number of people told."""
    now = timezone.now()
    partner_ids = AccessGrant.objects.active(at=now).filter(
        model_size=request.model_size, partner__active=True).values("partner_id")
    recipients = sorted(set(
        PartnerMember.objects.current().filter(partner_id__in=partner_ids, user__is_active=True).exclude(user__email="")
        .values_list("user__email", flat=True)
    ))
    if not recipients:
        return 0
    size = request.model_size
    lines = [
        f"{size} ({size.slug}) has been withdrawn.",
        "",
        "No new download links will be issued for it under your organisation's grant. Links issued before",
        "the withdrawal keep working only until they expire (at most an hour).",
    ]
    if request.public_rationale:
        lines += ["", "Why:", request.public_rationale]
    lines += ["", f"Your grants: {settings.SITE_URL}/portal/"]
    email_enqueue(event="stage.withdrawn_notice", subject=f"[Stagegate] {size.slug} has been withdrawn",
                  body="\n".join(lines), recipients=recipients)
    return len(recipients)


def review_reminder_email(*, changes: Iterable[StageChange], today: date) -> None:
    changes = list(changes)
    if not changes:
        return
    overdue = sum(1 for change in changes if change.review_by < today)
    lines = ["These release stages are due for review:", ""]
    for change in changes:
        state = "OVERDUE since" if change.review_by < today else "due"
        lines.append(f"- {change.subject_label}: {change.to_stage} since {change.applied_at:%Y-%m-%d}, "
                     f"review {state} {change.review_by.isoformat()}")
    lines += ["", f"Dashboard: {settings.SITE_URL}/admin/releases/dashboard/"]
    subject = f"[Stagegate] {len(changes)} stage review(s) due, {overdue} overdue"
    email_enqueue(event="stage.review_due", subject=subject, body="\n".join(lines), recipients=staff_emails())


def removal_request_notify(*, request) -> None:
    """Tell staff (STAGEGATE_NOTIFY_EMAILS and policy staff) that someone asked for text to be removed."""
    dataset = request.dataset.name if request.dataset else "a dataset (not named)"
    body = "\n".join([
        f"{request.name} <{request.email}> asks for text to be removed from {dataset}.",
        "", "The text, or how to find it:", request.text, "", "Why:", request.reason, "",
        f"Review it: {settings.SITE_URL}/admin/registry/dataremovalrequest/{request.pk}/change/",
    ])
    email_enqueue(event="removal_request.created", subject=f"[Stagegate] Data-removal request #{request.pk}",
                  body=body, recipients=staff_emails())


def audit_failure_notify(*, problem: str) -> None:
    """Tell staff the daily verification of the audit trail failed, and where."""
    body = "\n".join([
        "The daily verification of the audit trail failed:", "", f"  {problem}", "",
        "The chain, its signed checkpoints or their copies in S3 disagree: history may have been rewritten.",
        "Check it by hand with `manage.py audit_verify` (and `--checkpoint FILE` against any checkpoint saved",
        f"outside this system); the published checkpoints are at {settings.SITE_URL}/api/v1/audit/checkpoints/.",
    ])
    email_enqueue(event="audit.verify_failed", subject="[Stagegate] The audit trail failed verification",
                  body=body, recipients=staff_emails())
    webhooks_enqueue(event="audit.verify_failed", payload={"problem": problem})
