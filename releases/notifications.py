"""Telling people about stage events: email to policy staff, HMAC-signed webhooks to configured URLs.

Called from Celery tasks (workers/tasks.py) after the governing transaction has committed.
"""

import hashlib
import hmac
import json
import logging
import uuid
from collections.abc import Iterable
from datetime import date

import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.utils import timezone

from releases.models import StageChange, StageChangeRequest
from releases.roles import POLICY_STAFF_GROUP
from releases.stages import Stage

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Stagegate-Signature"
EVENT_HEADER = "X-Stagegate-Event"

_SUBJECTS = {
    "stage_request.created": "{size}: {from_stage} → {to_stage} requested by {requester}",
    "stage_request.approved": "{size}: {from_stage} → {to_stage} approved ({approvals}/{required})",
    "stage_request.rejected": "{size}: {from_stage} → {to_stage} rejected",
    "stage_request.cancelled": "{size}: {from_stage} → {to_stage} cancelled",
    "stage.applied": "{size} is now {to_stage}",
}


def policy_staff_emails() -> list[str]:
    users = get_user_model().objects.filter(groups__name=POLICY_STAFF_GROUP, is_active=True).exclude(email="")
    return sorted(set(users.values_list("email", flat=True)))


def _admin_url(request: StageChangeRequest) -> str:
    return f"{settings.SITE_URL}/admin/releases/stagechangerequest/{request.pk}/change/"


def stage_event_notify(*, event: str, request_id: int) -> None:
    """Email policy staff about the event and queue one signed webhook delivery per configured URL."""
    request = StageChangeRequest.objects.select_related("model_size", "requested_by").get(pk=request_id)
    approvals = request.decisions.filter(verdict="approve").count()
    context = {
        "size": request.model_size.slug, "from_stage": request.from_stage, "to_stage": request.to_stage,
        "requester": request.requested_by.get_username() if request.requested_by else "history",
        "approvals": approvals, "required": request.approvals_required,
    }
    subject = "[Stagegate] " + _SUBJECTS.get(event, event).format(**context)
    lines = [
        f"Request #{request.pk}: {request.model_size} from {request.from_stage} to {request.to_stage}.",
        f"Status: {request.get_status_display()}. Approvals: {approvals} of {request.approvals_required}.",
    ]
    if request.effective_at:
        lines.append(f"Embargoed until {request.effective_at.isoformat()}.")
    last_decision = request.decisions.select_related("decided_by").last()
    if event in ("stage_request.approved", "stage_request.rejected") and last_decision is not None:
        lines.append(f"{last_decision.decided_by.get_username()} {last_decision.verdict}d: "
                     f"{last_decision.comment or '(no comment)'}")
    lines += ["", "Rationale:", request.rationale, "", f"Review it: {_admin_url(request)}"]
    recipients = policy_staff_emails()
    if recipients:
        send_mail(subject, "\n".join(lines), settings.DEFAULT_FROM_EMAIL, recipients)

    payload = {
        "event": event, "request_id": request.pk, "model": request.model_size.slug,
        "from_stage": request.from_stage, "to_stage": request.to_stage, "status": request.status,
        "effective_at": request.effective_at.isoformat() if request.effective_at else None,
        "public_rationale": request.public_rationale,
    }
    webhooks_queue(event=event, payload=payload)
    if event == "stage.applied" and request.to_stage == Stage.WITHDRAWN:
        grantees_notify_withdrawal(request=request)


def grantees_notify_withdrawal(*, request: StageChangeRequest) -> int:
    """Email the members of partners holding an active grant for the withdrawn size: no new links will be
    issued, and links already issued stop working when they expire. Returns the number of people told."""
    from releases.models import AccessGrant, PartnerMember

    now = timezone.now()
    partner_ids = AccessGrant.objects.filter(
        model_size=request.model_size, revoked_at__isnull=True, starts_at__lte=now, expires_at__gt=now,
        partner__active=True,
    ).values("partner_id")
    recipients = sorted(set(
        PartnerMember.objects.filter(partner_id__in=partner_ids, user__is_active=True).exclude(user__email="")
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
    send_mail(f"[Stagegate] {size.slug} has been withdrawn", "\n".join(lines), settings.DEFAULT_FROM_EMAIL,
              recipients)
    return len(recipients)


def webhooks_queue(*, event: str, payload: dict) -> int:
    """Queue one delivery per URL in STAGEGATE_WEBHOOK_URLS; the body is fixed here so retries resend it exactly."""
    from workers.tasks import deliver_webhook_task

    urls = list(getattr(settings, "STAGEGATE_WEBHOOK_URLS", []) or [])
    if not urls:
        return 0
    if not settings.STAGEGATE_WEBHOOK_SECRET:
        log.error("STAGEGATE_WEBHOOK_URLS is set but STAGEGATE_WEBHOOK_SECRET is empty: webhooks not sent")
        return 0
    body = json.dumps({"id": str(uuid.uuid4()), "occurred_at": timezone.now().isoformat(), **payload},
                      sort_keys=True)
    for url in urls:
        deliver_webhook_task.delay(url, event, body)
    return len(urls)


def webhook_signature(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def webhook_deliver(*, url: str, event: str, body: str) -> int:
    """POST the body with its signature; raises on network errors and non-2xx so the task retries."""
    raw = body.encode()
    response = requests.post(
        url, data=raw, timeout=settings.STAGEGATE_WEBHOOK_TIMEOUT_S,
        headers={"Content-Type": "application/json", EVENT_HEADER: event,
                 SIGNATURE_HEADER: webhook_signature(raw, settings.STAGEGATE_WEBHOOK_SECRET)},
    )
    response.raise_for_status()
    return response.status_code


def review_reminder_email(*, changes: Iterable[StageChange], today: date) -> None:
    changes = list(changes)
    recipients = policy_staff_emails()
    if not changes or not recipients:
        return
    overdue = sum(1 for change in changes if change.review_by < today)
    lines = ["These release stages are due for review:", ""]
    for change in changes:
        state = "OVERDUE since" if change.review_by < today else "due"
        lines.append(f"- {change.model_size.slug}: {change.to_stage} since {change.applied_at:%Y-%m-%d}, "
                     f"review {state} {change.review_by.isoformat()}")
    lines += ["", f"Dashboard: {settings.SITE_URL}/admin/releases/dashboard/"]
    subject = f"[Stagegate] {len(changes)} stage review(s) due, {overdue} overdue"
    send_mail(subject, "\n".join(lines), settings.DEFAULT_FROM_EMAIL, recipients)
