"""Celery tasks: each loads its records by id and calls a service."""

from celery import shared_task

from registry import services
from registry.models import Artifact
from releases import notifications
from releases import services as release_services


@shared_task(acks_late=True)
def verify_artifact_task(artifact_id: int) -> bool:
    """Check that a stored file still has the bytes and sha256 the registry recorded (read-only, so idempotent)."""
    artifact = Artifact.objects.get(pk=artifact_id)
    return services.artifact_verify(artifact=artifact)


# --------------------------------------------------------------------------- release governance
@shared_task(acks_late=True)
def notify_stage_event_task(event: str, request_id: int) -> None:
    """Email policy staff and queue webhooks for a stage event (sending twice on a redelivery is tolerable)."""
    notifications.stage_event_notify(event=event, request_id=request_id)


@shared_task(
    acks_late=True, autoretry_for=(Exception,), retry_backoff=10, retry_backoff_max=15 * 60, max_retries=8,
)
def deliver_webhook_task(url: str, event: str, body: str) -> int:
    """POST one signed stage event; retried with backoff. Receivers dedupe by the body's `id`."""
    return notifications.webhook_deliver(url=url, event=event, body=body)


@shared_task(acks_late=True)
def apply_due_stage_changes_task() -> list[int]:
    """Beat, every minute: apply approved requests whose embargo has lifted (conditional UPDATE: idempotent)."""
    return release_services.stage_changes_apply_due()


@shared_task(acks_late=True)
def send_stage_review_reminders_task() -> list[int]:
    """Beat, daily: remind policy staff of due and overdue stage reviews (at most once per change per day)."""
    return release_services.stage_review_reminders_send()
