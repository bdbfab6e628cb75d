"""Release decisions: stage-change requests, each person's decision, applied changes and their reviews.

A request moves one subject: a revision of a size's files, an output dataset, or (to withdraw) a size with all
its revisions. What it releases is recorded with it (`subject`: the revision id and its file digests, or the
dataset's split digests) and again with each decision and the applied change, so the record says which bytes
each person approved.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

from registry.models import ModelSize, OutputDataset, Revision
from releases.stage_names import Stage


class SubjectMixin:
    """What a request or a change is about, for people: `mini-1m@0123456789ab`, `dataset mini-1m-k40`,
    `mini-1m (every revision)`."""

    @property
    def subject_label(self) -> str:
        if self.dataset_id is not None:
            return f"dataset {self.dataset.name}"
        if self.revision_id is not None:
            return f"{self.model_size.slug}@{self.revision.short}"
        return f"{self.model_size.slug} (every revision)"


class StageChangeRequest(SubjectMixin, models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        APPROVED = "approved", "Approved (embargoed)"
        REJECTED = "rejected", "Rejected"
        CANCELLED = "cancelled", "Cancelled"
        APPLIED = "applied", "Applied"
        SUPERSEDED = "superseded", "Superseded"

    OPEN = (Status.PENDING, Status.APPROVED)

    # The size concerned (empty only for a reference dataset, which belongs to no size).
    model_size = models.ForeignKey(ModelSize, on_delete=models.PROTECT, null=True, blank=True,
                                   related_name="stage_requests")
    # The subject: a revision, or a dataset, or neither (a withdrawal of the whole size).
    revision = models.ForeignKey(Revision, on_delete=models.PROTECT, null=True, blank=True,
                                 related_name="stage_requests")
    dataset = models.ForeignKey(OutputDataset, on_delete=models.PROTECT, null=True, blank=True,
                                related_name="stage_requests")
    # What it releases, as filed: {"revision", "files": [[filename, bytes, sha256], ...]} or {"dataset", "splits"}.
    subject = models.JSONField(default=dict, blank=True)
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
        permissions = [("decide_stagechangerequest", "Can approve or reject stage-change requests")]
        constraints = [
            models.CheckConstraint(condition=Q(revision__isnull=True) | Q(dataset__isnull=True),
                                   name="stage_request_one_subject"),
            models.CheckConstraint(condition=Q(model_size__isnull=False) | Q(dataset__isnull=False),
                                   name="stage_request_has_a_subject"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.subject_label}: {self.from_stage} → {self.to_stage}"


class StageDecision(models.Model):
    """One policy-staff member's approval or rejection of a request; each person decides once."""

    class Verdict(models.TextChoices):
        APPROVE = "approve", "Approve"
        REJECT = "reject", "Reject"

    request = models.ForeignKey(StageChangeRequest, on_delete=models.CASCADE, related_name="decisions")
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    verdict = models.CharField(max_length=8, choices=Verdict.choices)
    comment = models.TextField(blank=True)
    # The request's subject as this person decided on it (the same bytes as filed: a subject never changes).
    subject = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["request", "decided_by"], name="stage_decision_once_per_person"),
        ]

    def __str__(self) -> str:
        return f"{self.decided_by} {self.verdict}s #{self.request_id}"


class StageRequestComment(models.Model):
    """One message in a request's discussion among policy staff: part of the record, never edited."""

    request = models.ForeignKey(StageChangeRequest, on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    text = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.author} on #{self.request_id}"


class StageChange(SubjectMixin, models.Model):
    """An applied stage change: the stage history of a revision, a dataset or a whole size, one row per move."""

    model_size = models.ForeignKey(ModelSize, on_delete=models.PROTECT, null=True, blank=True,
                                   related_name="stage_changes")
    revision = models.ForeignKey(Revision, on_delete=models.PROTECT, null=True, blank=True,
                                 related_name="stage_changes")
    dataset = models.ForeignKey(OutputDataset, on_delete=models.PROTECT, null=True, blank=True,
                                related_name="stage_changes")
    subject = models.JSONField(default=dict, blank=True)
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
        permissions = [("review_stagechange", "Can record reviews of applied stages")]

    def __str__(self) -> str:
        return f"{self.subject_label}: {self.from_stage} → {self.to_stage} on {self.applied_at:%Y-%m-%d}"


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
        return f"Review of {self.change.subject_label} by {self.reviewed_by}: {self.outcome}"


class SizeRelease(ModelSize):
    """A model size as release governance sees it (its own admin: stage, timeline, requests)."""

    class Meta:
        proxy = True
        verbose_name = "size release"
        permissions = [("see_unreleased", "Can see and download sizes and datasets at every stage")]


class DatasetPublication(OutputDataset):
    """An output dataset as a release subject (its own admin: stage, history, requests)."""

    class Meta:
        proxy = True
        verbose_name = "dataset release"
