"""The audit trail's rows: events, appended by anyone, and the checkpoints the sealer signs over them."""

from django.db import models
from django.db.models import Q


class AuditEvent(models.Model):
    """One event. Appended with no chain computation (`id` comes from the database's sequence); the sealer
    (releases/audit/sealer.py) later gives it its place in the chain: `seq`, `prev_hash`, `hash`, set once.
    Database triggers refuse every other UPDATE, and every DELETE.

    Actor and target are stored as strings, not foreign keys: the record must outlive and never
    be rewritten by deletions elsewhere.
    """

    seq = models.PositiveBigIntegerField(unique=True, null=True, blank=True, editable=False,
                                         help_text="Its place in the chain, from 1; empty until sealed.")
    at = models.DateTimeField(editable=False)
    actor_id = models.CharField(max_length=64, blank=True, editable=False)
    actor_label = models.CharField(max_length=150, editable=False, help_text="Username, or 'system'.")
    action = models.CharField(max_length=64, editable=False, db_index=True)
    target_type = models.CharField(max_length=64, editable=False)
    target_id = models.CharField(max_length=64, editable=False)
    target_label = models.CharField(max_length=200, editable=False)
    before = models.JSONField(null=True, blank=True, editable=False)
    after = models.JSONField(null=True, blank=True, editable=False)
    reason = models.TextField(blank=True, editable=False)
    ip = models.GenericIPAddressField(null=True, blank=True, editable=False)
    data = models.JSONField(default=dict, blank=True, editable=False)
    prev_hash = models.CharField(max_length=64, unique=True, null=True, blank=True, editable=False)
    hash = models.CharField(max_length=64, unique=True, null=True, blank=True, editable=False)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["target_type", "target_id", "id"], name="audit_target"),
            # The sealer's work list: small, whatever the size of the trail.
            models.Index(fields=["id"], condition=Q(seq__isnull=True), name="audit_unsealed"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(seq__gte=1), name="audit_seq_positive"),
            models.CheckConstraint(
                condition=Q(seq__isnull=True, prev_hash__isnull=True, hash__isnull=True)
                | Q(seq__isnull=False, prev_hash__isnull=False, hash__isnull=False),
                name="audit_sealed_whole"),
        ]

    def __str__(self) -> str:
        place = f"#{self.seq}" if self.seq is not None else f"(unsealed, id {self.pk})"
        return f"{place} {self.action} {self.target_label} by {self.actor_label}"


class AuditCheckpoint(models.Model):
    """A signed statement that the chain's first `seq` events end in `head`. Copied to S3 when made
    (`published_at`, set once): whoever keeps a copy can later prove that nothing before it was rewritten."""

    seq = models.PositiveBigIntegerField(unique=True, editable=False, help_text="Events sealed so far.")
    head = models.CharField(max_length=64, editable=False, help_text="The hash of event `seq`.")
    sealed_at = models.CharField(max_length=32, editable=False,
                                 help_text="ISO 8601 UTC, exactly as signed (e.g. 2026-12-04T11:50:00.123456Z).")
    key_id = models.CharField(max_length=64, editable=False)
    signature = models.CharField(max_length=128, editable=False, help_text="Base64 of the Ed25519 signature.")
    published_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-seq"]
        constraints = [models.CheckConstraint(condition=Q(seq__gte=1), name="audit_checkpoint_seq_positive")]

    def __str__(self) -> str:
        return f"checkpoint #{self.seq} {self.head[:12]}…"
