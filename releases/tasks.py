"""Celery tasks of the release app: the outbox's dispatcher, the governance clock (embargoes, reviews,
expired tokens) and the audit trail's sealer and daily check. Each is a thin wrapper over a service."""

from celery import shared_task
from django.db import transaction

from releases.access import renewals, tokens
from releases.audit.sealer import audit_seal
from releases.audit.verify import audit_verify
from releases.governance import notifications, reviews, stage_changes
from releases.outbox import delivery


@shared_task
def dispatch_outbox_task() -> dict:
    """Beat, every STAGEGATE_OUTBOX_INTERVAL_S: send due emails and webhooks (each claimed, so runs may overlap)."""
    report = delivery.dispatch_due()
    return {"sent": report.sent, "retrying": report.retrying, "failed": report.failed}


@shared_task(acks_late=True)
def apply_due_stage_changes_task() -> list[int]:
    """Beat, every minute: apply approved requests whose embargo has lifted (conditional UPDATE: idempotent)."""
    return stage_changes.stage_changes_apply_due()


@shared_task(acks_late=True)
def send_stage_review_reminders_task() -> list[int]:
    """Beat, daily: remind policy staff of due and overdue stage reviews (at most once per change per day)."""
    return reviews.stage_review_reminders_send()


@shared_task(acks_late=True)
def send_grant_expiry_notices_task() -> list[int]:
    """Beat, daily: grants ending within 30, 7 or 1 days; their organisations are told once per threshold."""
    return renewals.grant_expiry_notices_send()


@shared_task(acks_late=True)
def delete_expired_tokens_task() -> int:
    """Beat, daily: API tokens past their expiry are deleted (they already authenticate nothing)."""
    return tokens.tokens_delete_expired()


@shared_task(ignore_result=True)
def seal_audit_trail_task() -> int | None:
    """Beat, every STAGEGATE_AUDIT_SEAL_INTERVAL_S: chain what was appended since and sign a checkpoint."""
    checkpoint = audit_seal()
    return checkpoint.seq if checkpoint else None


@shared_task(acks_late=True)
def verify_audit_trail_task() -> dict:
    """Beat, daily: verify the chain, the signatures and the S3 copies; staff are emailed if anything is wrong."""
    report = audit_verify()
    if not report.ok:
        with transaction.atomic():
            notifications.audit_failure_notify(problem=report.problem)
    return {"events": report.events, "checkpoints": report.checkpoints, "copies": report.copies,
            "problem": report.problem}
