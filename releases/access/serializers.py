"""Output shapes of the download API: manifests and signed links."""

from rest_framework import serializers

from releases.access.models import TokenLabel
from releases.stage_names import Stage


class LinkOutput(serializers.Serializer):
    url = serializers.URLField(help_text="Presigned GET straight to object storage; an attachment download.")
    expires_at = serializers.DateTimeField()
    bytes = serializers.IntegerField()
    sha256 = serializers.CharField()
    revision = serializers.CharField(required=False, help_text="The revision the file belongs to (weights).")


class QuotaUseOutput(serializers.Serializer):
    limit = serializers.IntegerField(help_text="Links allowed per file in any window of period_s seconds.")
    period_s = serializers.IntegerField()
    used = serializers.IntegerField()
    remaining = serializers.IntegerField()
    retry_after_s = serializers.IntegerField(help_text="Seconds until the next link is allowed; 0 while some remain.")


class ManifestFileOutput(serializers.Serializer):
    filename = serializers.CharField(source="artifact.filename")
    bytes = serializers.IntegerField(source="artifact.bytes")
    sha256 = serializers.CharField(source="artifact.sha256")
    format = serializers.CharField(source="artifact.format")
    quota = QuotaUseOutput(allow_null=True)


class GrantOutput(serializers.Serializer):
    id = serializers.IntegerField()
    partner = serializers.CharField(source="partner.name")
    purpose = serializers.CharField()
    starts_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    quota_links = serializers.IntegerField(allow_null=True)
    quota_period_s = serializers.IntegerField(allow_null=True)


class AccessOutput(serializers.Serializer):
    basis = serializers.CharField(source="reason", help_text="staff, public or grant")
    detail = serializers.CharField()
    terms_version = serializers.CharField(source="terms.version", allow_null=True, default=None)


class RevisionQuery(serializers.Serializer):
    revision = serializers.RegexField(r"^[0-9a-f]{40}$", required=False,
                                      help_text="A revision id (40 lowercase hex digits); default: the newest "
                                                "revision you may have.")


class ManifestOutput(serializers.Serializer):
    model = serializers.CharField(source="size.slug")
    display_name = serializers.CharField(source="size.display_name")
    revision = serializers.CharField(source="revision.revision", help_text="The revision these files are.")
    stage = serializers.ChoiceField(source="revision.stage", choices=Stage.choices,
                                    help_text="The revision's stage.")
    access = AccessOutput(source="decision")
    grant = GrantOutput(source="decision.grant", allow_null=True)
    link_ttl_s = serializers.IntegerField()
    files = ManifestFileOutput(many=True)


class TokenCreateInput(serializers.Serializer):
    name = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    expires_days = serializers.IntegerField(min_value=1, max_value=365, default=30)
    otp_token = serializers.CharField(
        max_length=16, required=False, allow_blank=True, default="",
        help_text="The current code of your TOTP device: the token is then verified (second factor).")
    scope = serializers.ChoiceField(choices=TokenLabel.Scope.values, default=TokenLabel.Scope.DOWNLOAD,
                                    help_text="download: downloads, the catalogue, your grants, requests and terms; "
                                              "governance (staff only): every call you may make.")
    sizes = serializers.ListField(child=serializers.SlugField(), required=False, default=list, max_length=100,
                                  help_text="A download token limited to these sizes' files; empty: every size.")


class TokenOutput(serializers.Serializer):
    token_key = serializers.CharField(help_text="The key's public prefix, as the admin and audit show it.")
    name = serializers.SerializerMethodField()
    created = serializers.DateTimeField()
    expiry = serializers.DateTimeField(allow_null=True)
    verified = serializers.SerializerMethodField(help_text="Created with a second factor.")
    scope = serializers.SerializerMethodField(help_text="download or governance.")
    sizes = serializers.SerializerMethodField(help_text="The sizes a download token is limited to (empty: all).")

    @staticmethod
    def _label(token):
        return getattr(token, "label", None)  # tokens made outside the services (knox directly) have none

    def get_name(self, token) -> str:
        label = self._label(token)
        return label.name if label else ""

    def get_verified(self, token) -> bool:
        label = self._label(token)
        return bool(label and label.verified)

    def get_scope(self, token) -> str:
        label = self._label(token)
        return label.scope if label else "governance"  # made outside the services: unlimited, as before scopes

    def get_sizes(self, token) -> list[str]:
        label = self._label(token)
        return list(label.sizes) if label else []


class TokenCreatedOutput(TokenOutput):
    key = serializers.CharField(help_text="Shown this once only: only a hash is stored.")


class RevisionFileOutput(serializers.Serializer):
    filename = serializers.CharField()
    bytes = serializers.IntegerField()
    sha256 = serializers.CharField()


class RevisionOutput(serializers.Serializer):
    revision = serializers.CharField()
    number = serializers.IntegerField()
    stage = serializers.ChoiceField(choices=Stage.choices)
    created_at = serializers.DateTimeField()
    parent = serializers.CharField(source="parent.revision", allow_null=True, default=None)
    training_run = serializers.IntegerField(source="training_run_id", allow_null=True)
    note = serializers.CharField()
    files = RevisionFileOutput(source="artifacts.all", many=True)


# --------------------------------------------------------------------------- a partner member's own records
class MemberGrantOutput(serializers.Serializer):
    id = serializers.IntegerField()
    model_size = serializers.CharField(source="model_size.slug")
    partner = serializers.CharField(source="partner.name")
    state = serializers.SerializerMethodField(help_text="active, grant_revoked, grant_expired or grant_not_started")
    purpose = serializers.CharField()
    starts_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    quota_links = serializers.IntegerField(allow_null=True)
    quota_period_s = serializers.IntegerField(allow_null=True)

    def get_state(self, grant) -> str:
        from releases.access.rules import grant_state

        return grant_state(grant)


class AccessRequestInput(serializers.Serializer):
    model_size = serializers.SlugField(help_text="The size's slug, e.g. mini-3m.")
    purpose = serializers.CharField(help_text="What the size is needed for.")
    answers = serializers.DictField(
        child=serializers.JSONField(), required=False, default=dict,
        help_text="Answers to the size's access questions (GET /api/v1/access-questions/?model_size=SLUG), by "
                  "question id: text, one of a choice's options, or true for an agree-to question.")


class AccessQuestionOutput(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField(help_text="text, choice or agree")
    prompt = serializers.CharField()
    choices = serializers.ListField(child=serializers.CharField(), help_text="For a choice: its options.")
    required = serializers.BooleanField()


class RecordedAnswer(serializers.Serializer):
    question_id = serializers.IntegerField()
    kind = serializers.CharField()
    prompt = serializers.CharField(help_text="The question as it was asked.")
    answer = serializers.JSONField(help_text="The text or option given; true for an agree-to question; null "
                                             "when an optional question was left blank.")


class AccessRequestOutput(serializers.Serializer):
    id = serializers.IntegerField()
    model_size = serializers.CharField(source="model_size.slug")
    partner = serializers.CharField(source="partner.name")
    purpose = serializers.CharField()
    status = serializers.CharField(help_text="pending, granted, refused or withdrawn")
    created_at = serializers.DateTimeField()
    decided_at = serializers.DateTimeField(allow_null=True)
    decision_reason = serializers.CharField()
    answers = RecordedAnswer(many=True)


class TermsOutput(serializers.Serializer):
    version = serializers.CharField()
    text = serializers.CharField()
    published_at = serializers.DateTimeField()
    accepted = serializers.BooleanField(help_text="Whether you have accepted this version.")


class TermsAcceptInput(serializers.Serializer):
    version = serializers.CharField(help_text="The version you accept: the one in force (GET /api/v1/terms/).")


# --------------------------------------------------------------------------- a partner admin's organisation
class MemberTokenOutput(serializers.Serializer):
    token_key = serializers.CharField(help_text="The token's public prefix.")
    name = serializers.SerializerMethodField()
    expiry = serializers.DateTimeField(allow_null=True)

    def get_name(self, token) -> str:
        label = getattr(token, "label", None)
        return label.name if label else ""


class OrganisationMemberOutput(serializers.Serializer):
    id = serializers.IntegerField(source="member.pk")
    username = serializers.CharField(source="member.user.username")
    email = serializers.CharField(source="member.user.email")
    role = serializers.CharField(source="member.role", help_text="member or admin")
    added_at = serializers.DateTimeField(source="member.added_at")
    tokens = MemberTokenOutput(many=True)


class InvitationOutput(serializers.Serializer):
    id = serializers.IntegerField()
    email = serializers.EmailField()
    role = serializers.CharField()
    invited_by = serializers.CharField(source="invited_by.username")
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    state = serializers.SerializerMethodField(help_text="pending, accepted, cancelled or expired")

    def get_state(self, invitation) -> str:
        return invitation.state()


class OrganisationOutput(serializers.Serializer):
    partner = serializers.CharField(source="partner.name")
    kind = serializers.CharField(source="partner.kind")
    members = OrganisationMemberOutput(many=True)
    invitations = InvitationOutput(many=True, help_text="Pending ones.")


class InvitationInput(serializers.Serializer):
    email = serializers.CharField(max_length=254, help_text="The address to invite.")
    role = serializers.ChoiceField(choices=["member", "admin"], default="member")


class MemberTokensRevokeInput(serializers.Serializer):
    token_key = serializers.CharField(required=False, help_text="One token's prefix; without it, all of them.")


class RevokedTokensOutput(serializers.Serializer):
    revoked_tokens = serializers.ListField(child=serializers.CharField())


class UsageRowOutput(serializers.Serializer):
    day = serializers.DateField()
    model_size = serializers.CharField()
    revision = serializers.CharField()
    links = serializers.IntegerField()
    bytes = serializers.IntegerField()
