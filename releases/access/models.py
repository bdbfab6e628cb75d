"""Who may have what: partner organisations, members, terms of use, grants, access requests, issued links
and the names of API tokens."""

from datetime import datetime

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from registry.models import ModelFamily, ModelSize


class TokenLabel(models.Model):
    """A name for an API token (knox tokens have none), shown in the admin and audit, and what it may do."""

    class Scope(models.TextChoices):
        DOWNLOAD = "download", "download (manifests, links, datasets, Hub clients, your grants and requests)"
        GOVERNANCE = "governance", "governance (also release decisions and jobs: staff only)"

    token = models.OneToOneField("knox.AuthToken", on_delete=models.CASCADE, primary_key=True, related_name="label")
    name = models.CharField(max_length=100)
    scope = models.CharField(max_length=16, choices=Scope.choices, default=Scope.DOWNLOAD)
    # A download token may be limited to these sizes' files (slugs); empty: every size its owner may have.
    sizes = models.JSONField(default=list, blank=True)
    # Created with a second factor (a verified session or a current code): it may make governance calls
    # where the second factor is required (releases/governance/second_factor.py).
    verified = models.BooleanField(default=False)

    def __str__(self) -> str:
        return self.name



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


class PartnerActivity(models.Model):
    """When an organisation became active or inactive: the history `release-state` reads (nothing is deleted)."""

    partner = models.ForeignKey(PartnerOrganisation, on_delete=models.PROTECT, related_name="activity")
    active = models.BooleanField()
    at = models.DateTimeField()

    class Meta:
        ordering = ["partner", "at", "id"]

    def __str__(self) -> str:
        return f"{self.partner} {'active' if self.active else 'inactive'} from {self.at:%Y-%m-%d %H:%M}"


class MembershipQuerySet(models.QuerySet):
    def current(self) -> "MembershipQuerySet":
        return self.filter(left_at__isnull=True)

    def at(self, when: datetime) -> "MembershipQuerySet":
        """Memberships that held at `when`."""
        return self.filter(added_at__lte=when).filter(Q(left_at__isnull=True) | Q(left_at__gt=when))


class PartnerMember(models.Model):
    """A user's membership of a partner organisation, from `added_at` until `left_at` (kept after it ends, for
    the history). A user belongs to at most one organisation at a time."""

    class Role(models.TextChoices):
        MEMBER = "member", "Member"
        ADMIN = "admin", "Partner admin"

    partner = models.ForeignKey(PartnerOrganisation, on_delete=models.PROTECT, related_name="members")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="partner_memberships")
    added_at = models.DateTimeField(default=timezone.now)
    left_at = models.DateTimeField(null=True, blank=True, editable=False)
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER,
                            help_text="A partner admin invites and removes the organisation's members, revokes "
                                      "their API tokens and sees its usage (releases/access/organisation.py).")

    objects = MembershipQuerySet.as_manager()

    class Meta:
        ordering = ["partner", "user__username"]
        constraints = [
            models.UniqueConstraint(fields=["user"], condition=Q(left_at__isnull=True),
                                    name="one_current_membership_per_user"),
        ]

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


class AccessGrantQuerySet(models.QuerySet):
    def active(self, *, at: datetime) -> "AccessGrantQuerySet":
        """Grants in force at `at`: started, not expired, not (yet) revoked. The one place this condition is
        written as a query; `releases.access.rules.grant_state` names the same states for one grant."""
        return self.filter(starts_at__lte=at, expires_at__gt=at).filter(
            Q(revoked_at__isnull=True) | Q(revoked_at__gt=at))


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

    objects = AccessGrantQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["partner", "model_size"])]
        permissions = [("revoke_accessgrant", "Can revoke access grants")]
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


class Decided(models.Model):
    """Who decided a request policy staff grant or refuse, when, and why (shown to the asker)."""

    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                   related_name="+", editable=False)
    decided_at = models.DateTimeField(null=True, blank=True, editable=False)
    decision_reason = models.TextField(blank=True, editable=False)

    class Meta:
        abstract = True


class AccessRequest(Decided):
    """A partner member asks for a size with a purpose; staff grant (creating an AccessGrant) or refuse."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        GRANTED = "granted", "Granted"
        REFUSED = "refused", "Refused"
        WITHDRAWN = "withdrawn", "Withdrawn"

    partner = models.ForeignKey(PartnerOrganisation, on_delete=models.PROTECT, related_name="access_requests")
    model_size = models.ForeignKey(ModelSize, on_delete=models.PROTECT, related_name="access_requests")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    purpose = models.TextField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    grant = models.OneToOneField(AccessGrant, on_delete=models.PROTECT, null=True, blank=True,
                                 related_name="request", editable=False)
    # The access questions as they were asked, with the answers: [{question_id, kind, prompt, answer}]
    # (releases/access/questions.py). A copy, so that editing a question later leaves the record as it was.
    answers = models.JSONField(default=list, blank=True, editable=False)
    # A renewal asks for more time on a grant the organisation holds; granting it extends that grant.
    renewal_of = models.ForeignKey(AccessGrant, on_delete=models.PROTECT, null=True, blank=True,
                                   related_name="renewal_requests", editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # Two members asking at once must not leave two pending requests (the service's check races).
            models.UniqueConstraint(fields=["partner", "model_size"],
                                    condition=Q(status="pending", renewal_of__isnull=True),
                                    name="one_pending_access_request_per_size"),
            models.UniqueConstraint(fields=["renewal_of"], condition=Q(status="pending"),
                                    name="one_pending_renewal_per_grant"),
        ]

    def __str__(self) -> str:
        kind = "Renewal request" if self.renewal_of_id else "Access request"
        return f"{kind} #{self.pk}: {self.partner} → {self.model_size.slug}"


class GrantExpiryNotice(models.Model):
    """That the members of a grant's organisation were told it ends within `days_before` days (once each)."""

    grant = models.ForeignKey(AccessGrant, on_delete=models.CASCADE, related_name="expiry_notices")
    days_before = models.PositiveSmallIntegerField()
    # The expiry the notice was about: extending the grant makes its notices due again.
    expires_at = models.DateTimeField()
    sent_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["grant", "days_before", "expires_at"],
                                               name="grant_expiry_notice_once")]

    def __str__(self) -> str:
        return f"Grant #{self.grant_id}: {self.days_before}-day notice"


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
    revision = models.ForeignKey("registry.Revision", on_delete=models.PROTECT, null=True, blank=True,
                                 related_name="+", help_text="Empty only for links issued before revisions.")
    # The link row keeps what was handed out, whatever happens to the file's record.
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


class PartnerApplication(Decided):
    """Someone asks for their organisation to become a partner (or to join it): organisation, contact, the
    intended use and the terms they agreed to. Policy staff accept (the organisation is created and the
    applicant becomes its partner admin) or refuse, with a reason."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        ACCEPTED = "accepted", "Accepted"
        REFUSED = "refused", "Refused"

    applicant = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    organisation = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=PartnerOrganisation.Kind.choices)
    contact_name = models.CharField(max_length=200)
    contact_email = models.EmailField()
    intended_use = models.TextField()
    terms = models.ForeignKey(TermsVersion, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
                              help_text="The terms of use in force that the applicant agreed to.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    partner = models.ForeignKey(PartnerOrganisation, on_delete=models.PROTECT, null=True, blank=True,
                                related_name="applications", editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["applicant"], condition=Q(status="pending"),
                                               name="one_pending_application_per_applicant")]

    def __str__(self) -> str:
        return f"Partner application #{self.pk}: {self.organisation}"


class PartnerInvitation(models.Model):
    """A partner admin invites someone, by email address, to join the organisation. The link carries a secret
    stored here only as its sha256, so the table cannot be used to join. Whoever follows the link signs in with
    (or creates) an account of that address; the invitation is used once, and ends at `expires_at`."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        ACCEPTED = "accepted", "Accepted"
        CANCELLED = "cancelled", "Cancelled"
        EXPIRED = "expired", "Expired"

    partner = models.ForeignKey(PartnerOrganisation, on_delete=models.PROTECT, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=16, choices=PartnerMember.Role.choices, default=PartnerMember.Role.MEMBER)
    invited_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    secret_sha256 = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    accepted_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                    related_name="+", editable=False)
    accepted_at = models.DateTimeField(null=True, blank=True, editable=False)
    cancelled_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Invitation #{self.pk}: {self.email} to {self.partner}"

    def state(self, *, now: datetime | None = None) -> str:
        if self.accepted_at:
            return self.State.ACCEPTED
        if self.cancelled_at:
            return self.State.CANCELLED
        return self.State.EXPIRED if self.expires_at <= (now or timezone.now()) else self.State.PENDING


class AccessQuestion(models.Model):
    """A question policy staff ask of everyone requesting a size (of one family, or one size), as Hugging
    Face's gating form does. Retired (inactive), never deleted: answers on record keep their question."""

    class Kind(models.TextChoices):
        TEXT = "text", "Free text"
        CHOICE = "choice", "One of several choices"
        AGREE = "agree", "Agree to (a checkbox that must be ticked)"

    family = models.ForeignKey(ModelFamily, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
                               help_text="Asked for every size of this family…")
    model_size = models.ForeignKey(ModelSize, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
                                   help_text="…or for this size only (choose one of the two).")
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.TEXT)
    prompt = models.TextField(help_text="What the partner reads, e.g. \"Which team will use the weights?\"")
    choices = models.JSONField(default=list, blank=True, help_text="For a choice: the options, one per line.")
    required = models.BooleanField(default=True, help_text="Agree-to questions are always required.")
    position = models.PositiveSmallIntegerField(default=0, help_text="Lower first (family questions before "
                                                                       "size questions).")
    active = models.BooleanField(default=True, help_text="Untick to stop asking it; answers already given stay.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["position", "id"]
        constraints = [models.CheckConstraint(
            condition=Q(family__isnull=False, model_size__isnull=True) | Q(family__isnull=True,
                                                                          model_size__isnull=False),
            name="access_question_for_family_or_size")]

    def __str__(self) -> str:
        where = self.model_size.slug if self.model_size_id else self.family.slug
        return f"{where}: {self.prompt[:60]}"
