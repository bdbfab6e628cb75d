"""One message waiting in, or sent from, the outbox."""

import uuid

from django.conf import settings
from django.db import models


class OutboxMessage(models.Model):
    class Channel(models.TextChoices):
        EMAIL = "email", "email"
        WEBHOOK = "webhook", "webhook"

    # A webhook's `id`: receivers de-duplicate by it, so it is fixed when the message is written.
    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    channel = models.CharField(max_length=8, choices=Channel.choices)
    event = models.CharField(max_length=64)
    recipients = models.JSONField(default=list, blank=True, help_text="Email addresses (email only).")
    url = models.URLField(max_length=1000, blank=True, help_text="Where the webhook is POSTed (webhook only).")
    subject = models.CharField(max_length=300, blank=True)
    body = models.TextField(help_text="The email's text, or the webhook's JSON body exactly as it is signed.")
    # The body carries a secret (an invitation link, for its addressee only): hidden in the admin, erased once
    # sent or given up on, and never sent again.
    confidential = models.BooleanField(default=False, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    next_attempt_at = models.DateTimeField(db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True, help_text="Given up on (kept, never deleted).")
    # The admin-registered receiver it goes to (empty: an email, or a URL from STAGEGATE_WEBHOOK_URLS).
    subscription = models.ForeignKey("WebhookSubscription", on_delete=models.PROTECT, null=True, blank=True,
                                     related_name="deliveries")

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.channel} {self.event} #{self.pk}"


class WebhookSubscription(models.Model):
    """A receiver policy staff registered in the admin: where to POST, which events, and its own secret (which
    signs every delivery to it; releases/outbox/delivery.py). Its deliveries are the outbox messages naming it."""

    class Events(models.TextChoices):
        STAGE = "stage", "stage changes and requests"
        GRANT = "grant", "grants (ending soon, extended)"
        ACCESS_REQUEST = "access_request", "access requests"
        DATASET = "dataset", "dataset stage changes"
        TOKEN = "token", "API tokens (created, revoked)"
        AUDIT = "audit", "audit verification failures"

    name = models.CharField(max_length=100)
    url = models.URLField(max_length=1000, help_text="https, or a host on STAGEGATE_WEBHOOK_ALLOWED_HOSTS.")
    secret = models.CharField(max_length=64, editable=False, help_text="Signs every delivery (HMAC-SHA256).")
    events = models.JSONField(default=list, help_text="The kinds of event it receives.")
    active = models.BooleanField(default=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
