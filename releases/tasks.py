"""Celery tasks of the release app: the outbox's dispatcher and the governance clock (embargoes, reviews,
expired tokens). Each is a thin wrapper over a service."""

from celery import shared_task

from releases.access import tokens
from releases.governance import reviews, stage_changes
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
def delete_expired_tokens_task() -> int:
    """Beat, daily: API tokens past their expiry are deleted (they already authenticate nothing)."""
    return tokens.tokens_delete_expired()
