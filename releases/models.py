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


# --------------------------------------------------------------------------- partners and access (issue 5)
class PartnerOrganisation(models.Model):
    """A trusted organisation whose members may receive grants for sizes not yet public."""

    class Kind(models.TextChoices):
        RESEARCH = "research", "Research"
        SECURITY = "security", "Security"
        INDUSTRY = "industry", "Industry"
        GOVERNMENT = "government", "Government"
        OTHER = "other", "Other"

    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    contact_name = models.CharField(max_length=200, blank=True)
    contact_email = models.EmailField(blank=True)
    # Deactivating an organisation stops new links for all its members at once (grants stay on record).
    active = models.BooleanField(default=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class PartnerMember(models.Model):
    """A user's membership of a partner organisation; a user belongs to at most one."""

    partner = models.ForeignKey(PartnerOrganisation, on_delete=models.CASCADE, related_name="members")
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="partner_membership")
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["partner", "user__username"]

    def __str__(self) -> str:
        return f"{self.user} ({self.partner})"


class TermsVersion(models.Model):
    """A version of the partner terms of use. The latest published one must be accepted before any new link."""

    version = models.CharField(max_length=32, unique=True, help_text="e.g. v1, 2019-05")
    text = models.TextField()
    published_at = models.DateTimeField(help_text="In force from this moment; the latest in force must be accepted.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                   related_name="+", editable=False)

    class Meta:
        ordering = ["-published_at", "-id"]

    def __str__(self) -> str:
        return f"Terms {self.version}"


class TermsAcceptance(models.Model):
    terms = models.ForeignKey(TermsVersion, on_delete=models.PROTECT, related_name="acceptances")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="terms_acceptances")
    accepted_at = models.DateTimeField(auto_now_add=True)
    ip = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-accepted_at"]
        constraints = [models.UniqueConstraint(fields=["terms", "user"], name="terms_accepted_once_per_user")]

    def __str__(self) -> str:
        return f"{self.user} accepted {self.terms.version}"


class AccessGrant(models.Model):
    """Partner × size: the partner's members may get links for the size's files in [starts_at, expires_at),
    unless revoked, and only while the size is at the `partners` stage (releases/access.py)."""

    partner = models.ForeignKey(PartnerOrganisation, on_delete=models.PROTECT, related_name="grants")
    model_size = models.ForeignKey(ModelSize, on_delete=models.PROTECT, related_name="grants")
    purpose = models.TextField()
    granted_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    starts_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    # Optional quota: at most quota_links links per file in any quota_period_s window.
    quota_links = models.PositiveIntegerField(null=True, blank=True)
    quota_period_s = models.PositiveIntegerField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                   related_name="+", editable=False)
    revoke_reason = models.TextField(blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["partner", "model_size"])]
        constraints = [
            models.CheckConstraint(condition=Q(expires_at__gt=models.F("starts_at")), name="grant_ends_after_start"),
            models.CheckConstraint(
                condition=Q(quota_links__isnull=True, quota_period_s__isnull=True)
                | Q(quota_links__gte=1, quota_period_s__gte=1),
                name="grant_quota_complete",
            ),
        ]

    def __str__(self) -> str:
        return f"Grant #{self.pk}: {self.partner} → {self.model_size.slug}"

    @property
    def has_quota(self) -> bool:
        return self.quota_links is not None


class AccessRequest(models.Model):
    """A partner member asks for a size with a purpose; staff grant (creating an AccessGrant) or refuse."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        GRANTED = "granted", "Granted"
        REFUSED = "refused", "Refused"

    partner = models.ForeignKey(PartnerOrganisation, on_delete=models.PROTECT, related_name="access_requests")
    model_size = models.ForeignKey(ModelSize, on_delete=models.PROTECT, related_name="access_requests")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    purpose = models.TextField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                   related_name="+", editable=False)
    decided_at = models.DateTimeField(null=True, blank=True, editable=False)
    decision_reason = models.TextField(blank=True, editable=False)
    grant = models.OneToOneField(AccessGrant, on_delete=models.PROTECT, null=True, blank=True,
                                 related_name="request", editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Access request #{self.pk}: {self.partner} → {self.model_size.slug}"


class IssuedLink(models.Model):
    """One signed download link handed out (never the URL itself). Quotas count these rows."""

    issued_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                             related_name="+", help_text="Empty for anonymous downloads of public sizes.")
    partner = models.ForeignKey(PartnerOrganisation, on_delete=models.SET_NULL, null=True, blank=True,
                                related_name="+")
    grant = models.ForeignKey(AccessGrant, on_delete=models.PROTECT, null=True, blank=True, related_name="links")
    terms = models.ForeignKey(TermsVersion, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    model_size = models.ForeignKey(ModelSize, on_delete=models.PROTECT, related_name="+")
    # Artifacts can be replaced (registry); the link row keeps what was handed out.
    artifact = models.ForeignKey("registry.Artifact", on_delete=models.SET_NULL, null=True, blank=True,
                                 related_name="+")
    filename = models.CharField(max_length=255)
    bytes = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    basis = models.CharField(max_length=16, help_text="Why it was allowed: grant, public or staff.")
    ip = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-issued_at", "-id"]
        indexes = [models.Index(fields=["grant", "filename", "issued_at"])]

    def __str__(self) -> str:
        return f"Link to {self.model_size.slug}/{self.filename} at {self.issued_at:%Y-%m-%d %H:%M}"
