"""Webhook receivers registered by policy staff: each with its own secret (made here, shown once) and the kinds
of event it wants. Saving checks where the URL points (releases/outbox/webhook_urls.py) and is audited."""

import secrets

from django.db import transaction

from config.errors import DomainError
from releases.audit.chain import audit_record
from releases.outbox.models import WebhookSubscription
from releases.outbox.webhook_urls import WebhookUrlRefused, webhook_url_check


class InvalidSubscription(DomainError):
    code = "invalid_webhook"
    http_status = 400


@transaction.atomic
def webhook_subscription_save(*, subscription: WebhookSubscription, actor, ip: str | None = None) -> str | None:
    """Create or change a subscription; returns the new secret when one was made (creation), else None."""
    try:
        webhook_url_check(subscription.url)
    except WebhookUrlRefused as refused:
        raise InvalidSubscription(str(refused), fields={"url": [str(refused)]}) from None
    unknown = set(subscription.events) - set(WebhookSubscription.Events.values)
    if unknown or not subscription.events:
        raise InvalidSubscription("Choose the kinds of event it receives.", fields={"events": ["Required."]})
    created = subscription.pk is None
    secret = None
    if created:
        secret = subscription.secret = secrets.token_hex(32)
        subscription.created_by = actor
    subscription.save()
    audit_record(actor=actor, action="webhook.created" if created else "webhook.changed", target=subscription,
                 ip=ip, after={"name": subscription.name, "url": subscription.url, "events": subscription.events,
                               "active": subscription.active})
    return secret
