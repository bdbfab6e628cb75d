"""Writing messages into the outbox, and the dispatcher that sends them.

Callers enqueue inside their own transaction: the message exists exactly when the decision does. The
dispatcher (releases.tasks.dispatch_outbox_task, every STAGEGATE_OUTBOX_INTERVAL_S) claims each due message
with a conditional UPDATE, so concurrent dispatchers never send one twice at once, then sends it. A failure
(SMTP down, a webhook receiver erring) is recorded and retried with exponential backoff; one failing message
holds up no other. After STAGEGATE_OUTBOX_GIVE_UP_H hours a message is marked failed and kept.
"""

import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import requests
from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from releases.audit.chain import audit_record
from releases.outbox.models import OutboxMessage, WebhookSubscription
from releases.outbox.webhook_urls import WebhookUrlRefused, post_pinned
from releases.roles import MANAGE_WEBHOOKS, require

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Stagegate-Signature"
EVENT_HEADER = "X-Stagegate-Event"
DELIVERY_HEADER = "X-Stagegate-Delivery"
TIMED_SIGNATURE_HEADER = "X-Stagegate-Signature-Timed"
# A claimed message is left alone by other dispatchers this long (a send takes at most the webhook timeout).
CLAIM_LEASE_S = 120
FIRST_RETRY_S = 15
MAX_RETRY_S = 60 * 60


def email_enqueue(*, event: str, subject: str, body: str, recipients: list[str],
                  confidential: bool = False) -> OutboxMessage | None:
    """One email to `recipients` (deduplicated); None when there is nobody to tell. A `confidential` body (one
    that carries a secret link) is erased once sent."""
    recipients = sorted({address for address in recipients if address})
    if not recipients:
        return None
    return OutboxMessage.objects.create(channel=OutboxMessage.Channel.EMAIL, event=event, subject=subject[:300],
                                        body=body, recipients=recipients, next_attempt_at=timezone.now(),
                                        confidential=confidential)


ERASED_BODY = "(erased: it carried a secret link for its addressee only)"


def _erased(message: OutboxMessage) -> dict:
    return {"body": ERASED_BODY} if message.confidential else {}


def event_kind(event: str, payload: dict) -> str:
    """The kind a subscription chooses (WebhookSubscription.Events) for an event name and its payload."""
    family = event.split(".", 1)[0]
    if family in ("stage", "stage_request"):
        return "dataset" if payload.get("dataset") else "stage"
    return family


def webhooks_enqueue(*, event: str, payload: dict) -> list[OutboxMessage]:
    """One webhook per URL in STAGEGATE_WEBHOOK_URLS (signed with STAGEGATE_WEBHOOK_SECRET) and per active
    subscription that wants this kind of event (signed with its own secret). The body, with its `id`, is fixed
    now: a redelivery sends the same bytes and the same id."""
    targets: list[tuple[str, WebhookSubscription | None]] = []
    urls = list(getattr(settings, "STAGEGATE_WEBHOOK_URLS", []) or [])
    if urls and not settings.STAGEGATE_WEBHOOK_SECRET:
        log.error("STAGEGATE_WEBHOOK_URLS is set but STAGEGATE_WEBHOOK_SECRET is empty: webhooks not sent")
    elif urls:
        targets += [(url, None) for url in urls]
    kind = event_kind(event, payload)
    targets += [(subscription.url, subscription) for subscription in WebhookSubscription.objects.filter(active=True)
                if kind in subscription.events]
    messages = []
    for url, subscription in targets:
        message = OutboxMessage(channel=OutboxMessage.Channel.WEBHOOK, event=event, url=url,
                                subscription=subscription, next_attempt_at=timezone.now())
        message.body = json.dumps({"id": str(message.uid), "event": event,
                                   "occurred_at": timezone.now().isoformat(), **payload}, sort_keys=True)
        message.save()
        messages.append(message)
    return messages


def webhook_signature(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def webhook_signature_at(body: bytes, secret: str, timestamp: int) -> str:
    """`t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>`: the time is signed with the body, so a receiver
    can refuse a delivery replayed later (compare t with its clock) as well as a forged one."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def _send(message: OutboxMessage) -> None:
    """Raises on any failure, so the dispatcher retries."""
    if message.channel == OutboxMessage.Channel.EMAIL:
        send_mail(message.subject, message.body, settings.DEFAULT_FROM_EMAIL, message.recipients,
                  fail_silently=False)
        return
    raw = message.body.encode()
    if message.subscription_id is None:  # a receiver from STAGEGATE_WEBHOOK_URLS: the operator's own
        secret = settings.STAGEGATE_WEBHOOK_SECRET
    else:
        subscription = message.subscription
        if not subscription.active:
            raise WebhookUrlRefused(f"The receiver {subscription.name!r} is deactivated.")
        secret = subscription.secret
    headers = {"Content-Type": "application/json", EVENT_HEADER: message.event, DELIVERY_HEADER: str(message.uid),
               SIGNATURE_HEADER: webhook_signature(raw, secret),
               TIMED_SIGNATURE_HEADER: webhook_signature_at(raw, secret, int(time.time()))}
    if message.subscription_id is None:
        response = requests.post(message.url, data=raw, timeout=settings.STAGEGATE_WEBHOOK_TIMEOUT_S,
                                 allow_redirects=False, headers=headers)
        response.raise_for_status()
        return
    # Registered in the admin: checked again now, connected to the address checked, at its current URL.
    status = post_pinned(message.subscription.url, body=raw, headers=headers,
                         timeout_s=settings.STAGEGATE_WEBHOOK_TIMEOUT_S)
    if not 200 <= status < 300:
        raise WebhookUrlRefused(f"The receiver answered {status}.")


def retry_delay_s(attempts: int) -> int:
    """Seconds before the next try after `attempts` failures: 15 s, doubling, at most an hour."""
    return min(FIRST_RETRY_S * 2 ** max(attempts - 1, 0), MAX_RETRY_S)


@dataclass(frozen=True)
class DispatchReport:
    sent: int
    retrying: int
    failed: int


def dispatch_due(*, now: datetime | None = None, limit: int = 100) -> DispatchReport:
    """Send every message that is due (at most `limit`), each claimed first; returns what happened."""
    now = now or timezone.now()
    give_up_after = timedelta(hours=settings.STAGEGATE_OUTBOX_GIVE_UP_H)
    due = OutboxMessage.objects.filter(sent_at=None, failed_at=None, next_attempt_at__lte=now)
    sent = retrying = failed = 0
    for pk in list(due.order_by("next_attempt_at", "id").values_list("pk", flat=True)[:limit]):
        # Conditional UPDATE: a concurrent dispatcher that claimed it first leaves this one with 0 rows.
        if due.filter(pk=pk).update(next_attempt_at=now + timedelta(seconds=CLAIM_LEASE_S)) != 1:
            continue
        message = OutboxMessage.objects.get(pk=pk)
        try:
            _send(message)
        except Exception as exc:  # any failure of the channel: recorded and retried, never lost
            attempts = message.attempts + 1
            gave_up = now - message.created_at >= give_up_after
            OutboxMessage.objects.filter(pk=pk).update(
                attempts=attempts, last_error=f"{type(exc).__name__}: {exc}"[:2000],
                next_attempt_at=now + timedelta(seconds=retry_delay_s(attempts)),
                failed_at=now if gave_up else None, **(_erased(message) if gave_up else {}))
            log.warning("outbox %s %s attempt %d failed: %s", message.channel, message.pk, attempts, exc)
            failed += gave_up
            retrying += not gave_up
        else:
            OutboxMessage.objects.filter(pk=pk).update(sent_at=timezone.now(), attempts=message.attempts + 1,
                                                       last_error="", **_erased(message))
            sent += 1
    return DispatchReport(sent=sent, retrying=retrying, failed=failed)


@transaction.atomic
def messages_send_again(*, messages: QuerySet[OutboxMessage], actor, ip: str | None = None) -> int:
    """Send messages again now (same message, same delivery id, so receivers can tell a repeat), audited: a
    resent grant or stage event reaches the receivers again, so who did it is on record."""
    require(actor, MANAGE_WEBHOOKS, to="send outbox messages again")
    ids = list(messages.filter(confidential=False).values_list("id", flat=True))  # their bodies are erased
    count = OutboxMessage.objects.filter(id__in=ids).update(sent_at=None, failed_at=None,
                                                             next_attempt_at=timezone.now())
    for message in OutboxMessage.objects.filter(id__in=ids):
        audit_record(actor=actor, action="outbox.sent_again", target=message, ip=ip,
                     data={"event": message.event, "channel": message.channel, "uid": str(message.uid)})
    return count
