"""One message waiting in, or sent from, the outbox."""

import uuid

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
    created_at = models.DateTimeField(auto_now_add=True)
    next_attempt_at = models.DateTimeField(db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True, help_text="Given up on (kept, never deleted).")

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.channel} {self.event} #{self.pk}"
