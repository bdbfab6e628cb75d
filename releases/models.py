"""Release governance records: stage-change requests and their decisions, applied changes, reviews, audit."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from registry.models import ModelSize
from releases.stages import Stage


class StageChangeRequest(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        APPROVED = "approved", "Approved (embargoed)"
        REJECTED = "rejected", "Rejected"
        CANCELLED = "cancelled", "Cancelled"
        APPLIED = "applied", "Applied"
        SUPERSEDED = "superseded", "Superseded"

    OPEN = (Status.PENDING, Status.APPROVED)

    model_size = models.ForeignKey(ModelSize, on_delete=models.PROTECT, related_name="stage_requests")
    from_stage = models.CharField(max_length=16, choices=Stage.choices)
    to_stage = models.CharField(max_length=16, choices=Stage.choices)
    rationale = models.TextField(help_text="The full reasoning, for policy staff and later reviewers.")
    public_rationale = models.TextField(
        blank=True, help_text="What the public history page shows; the full rationale is never published."
    )
    # factor key (releases/factors.py) -> assessment text
    factors = models.JSONField(default=dict, blank=True)
    effective_at = models.DateTimeField(null=True, blank=True, help_text="Embargo: apply no earlier than this.")
    review_by = models.DateField(null=True, blank=True, help_text="Review date once applied (default six months).")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    # The rule in force when the request was made (releases/stages.py), so later setting changes
    # do not move the goalposts of a request already under review.
    approvals_required = models.PositiveSmallIntegerField()
    # Null only for historical changes recorded by a seed (e.g. GPT-2's 2019 releases).
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="stage_requests"
    )
    historical = models.BooleanField(default=False, help_text="Recorded from history, not decided here.")
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    applied_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "effective_at"])]

    def __str__(self) -> str:
        return f"#{self.pk} {self.model_size.slug}: {self.from_stage} → {self.to_stage}"


class StageDecision(models.Model):
    """One policy-staff member's approval or rejection of a request; each person decides once."""

    class Verdict(models.TextChoices):
        APPROVE = "approve", "Approve"
        REJECT = "reject", "Reject"

    request = models.ForeignKey(StageChangeRequest, on_delete=models.CASCADE, related_name="decisions")
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    verdict = models.CharField(max_length=8, choices=Verdict.choices)
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["request", "decided_by"], name="stage_decision_once_per_person"),
        ]

    def __str__(self) -> str:
        return f"{self.decided_by} {self.verdict}s #{self.request_id}"


class StageChange(models.Model):
    """An applied stage change: the size's stage history, one row per move."""

    model_size = models.ForeignKey(ModelSize, on_delete=models.PROTECT, related_name="stage_changes")
    request = models.OneToOneField(StageChangeRequest, on_delete=models.PROTECT, related_name="change")
    from_stage = models.CharField(max_length=16, choices=Stage.choices)
    to_stage = models.CharField(max_length=16, choices=Stage.choices)
    applied_at = models.DateTimeField()
    applied_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        help_text="Empty when the embargo task or a seed applied it.",
    )
    review_by = models.DateField()
    last_reviewed_at = models.DateTimeField(null=True, blank=True)
    # The reminder task's idempotency guard: one reminder per change per day.
    reminded_on = models.DateField(null=True, blank=True)

    class Meta:
        ordering = ["model_size", "applied_at", "id"]
        indexes = [models.Index(fields=["model_size", "applied_at"])]

    def __str__(self) -> str:
        return f"{self.model_size.slug}: {self.from_stage} → {self.to_stage} on {self.applied_at:%Y-%m-%d}"


class StageReview(models.Model):
    """A periodic review of a size's current stage (kept or to be revisited), with the next review date."""

    class Outcome(models.TextChoices):
        KEEP = "keep", "Keep the stage"
        REVISIT = "revisit", "Revisit: a stage-change request follows"

    change = models.ForeignKey(StageChange, on_delete=models.PROTECT, related_name="reviews")
    reviewed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    outcome = models.CharField(max_length=8, choices=Outcome.choices, default=Outcome.KEEP)
    notes = models.TextField()
    next_review_by = models.DateField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Review of {self.change.model_size.slug} by {self.reviewed_by}: {self.outcome}"


class AuditEvent(models.Model):
    """One governance event. Append-only (database triggers) and hash-chained (releases/audit.py).

    Actor and target are stored as strings, not foreign keys: the record must outlive and never
    be rewritten by deletions elsewhere.
    """

    seq = models.PositiveBigIntegerField(unique=True, editable=False)
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
    prev_hash = models.CharField(max_length=64, unique=True, editable=False)
    hash = models.CharField(max_length=64, unique=True, editable=False)

    class Meta:
        ordering = ["seq"]
        indexes = [models.Index(fields=["target_type", "target_id", "seq"])]
        constraints = [models.CheckConstraint(condition=Q(seq__gte=1), name="audit_seq_positive")]

    def __str__(self) -> str:
        return f"#{self.seq} {self.action} {self.target_label} by {self.actor_label}"


class TokenLabel(models.Model):
    """A name for an API token (knox tokens have none), shown in the admin and audit."""

    token = models.OneToOneField("knox.AuthToken", on_delete=models.CASCADE, primary_key=True, related_name="label")
    name = models.CharField(max_length=100)

    def __str__(self) -> str:
        return self.name
