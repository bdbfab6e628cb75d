"""Input and output shapes of the release-governance API."""

from rest_framework import serializers

from releases.factors import FACTORS
from releases.models import StageChange, StageChangeRequest, StageDecision
from releases.stages import Stage


# --------------------------------------------------------------------------- input
class StageRequestCreateInput(serializers.Serializer):
    to_stage = serializers.ChoiceField(choices=Stage.choices)
    rationale = serializers.CharField(trim_whitespace=True, max_length=20000)
    public_rationale = serializers.CharField(required=False, allow_blank=True, default="", max_length=5000)
    factors = serializers.DictField(
        child=serializers.CharField(allow_blank=True, max_length=5000), required=False, default=dict,
        help_text="Factor -> assessment. Factors: " + ", ".join(FACTORS) + ".",
    )
    effective_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
    review_by = serializers.DateField(required=False, allow_null=True, default=None)


class DecisionInput(serializers.Serializer):
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=5000)


class RejectInput(serializers.Serializer):
    comment = serializers.CharField(max_length=5000)


class CancelInput(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=5000)


class ReviewInput(serializers.Serializer):
    notes = serializers.CharField(max_length=20000)
    outcome = serializers.ChoiceField(choices=["keep", "revisit"], default="keep")
    next_review_by = serializers.DateField(required=False, allow_null=True, default=None)


class StageRequestListQuery(serializers.Serializer):
    status = serializers.ChoiceField(choices=StageChangeRequest.Status.choices, required=False)
    model = serializers.SlugField(required=False)


class ReleaseStateQuery(serializers.Serializer):
    at = serializers.DateTimeField(help_text="ISO date or date-time, e.g. 2019-09-01 or 2019-09-01T12:00:00Z.")

    def to_internal_value(self, data):
        raw = data.get("at", "") if hasattr(data, "get") else ""
        if isinstance(raw, str) and len(raw) == 10:  # a bare date means the end of that day (UTC)
            data = {"at": f"{raw}T23:59:59.999999Z"}
        return super().to_internal_value(data)


# --------------------------------------------------------------------------- output
class DecisionOutput(serializers.ModelSerializer):
    by = serializers.CharField(source="decided_by.username")

    class Meta:
        model = StageDecision
        fields = ["by", "verdict", "comment", "created_at"]


class StageRequestOutput(serializers.ModelSerializer):
    model = serializers.CharField(source="model_size.slug")
    requested_by = serializers.CharField(source="requested_by.username", allow_null=True, default=None)
    decisions = DecisionOutput(many=True)
    approvals = serializers.SerializerMethodField()

    class Meta:
        model = StageChangeRequest
        fields = [
            "id", "model", "from_stage", "to_stage", "status", "rationale", "public_rationale", "factors",
            "effective_at", "review_by", "approvals_required", "approvals", "requested_by", "decisions",
            "historical", "created_at", "decided_at", "applied_at",
        ]

    def get_approvals(self, request: StageChangeRequest) -> int:
        annotated = getattr(request, "approval_count", None)
        if annotated is not None:
            return annotated
        return sum(1 for decision in request.decisions.all() if decision.verdict == StageDecision.Verdict.APPROVE)


class PublicHistoryOutput(serializers.ModelSerializer):
    """What anyone may read about a size's applied changes: never the internal rationale or factors."""

    public_rationale = serializers.CharField(source="request.public_rationale")

    class Meta:
        model = StageChange
        fields = ["from_stage", "to_stage", "applied_at", "public_rationale"]


class ModelHistoryOutput(serializers.Serializer):
    model = serializers.CharField()
    stage = serializers.ChoiceField(choices=Stage.choices)
    changes = PublicHistoryOutput(many=True)


class ReviewOutput(serializers.Serializer):
    model = serializers.CharField(source="change.model_size.slug")
    stage = serializers.CharField(source="change.to_stage")
    outcome = serializers.CharField()
    notes = serializers.CharField()
    next_review_by = serializers.DateField()
    reviewed_by = serializers.CharField(source="reviewed_by.username")
    created_at = serializers.DateTimeField()


class DownloadAudienceOutput(serializers.Serializer):
    audience = serializers.CharField()
    description = serializers.CharField()
    grantees = serializers.ListField(child=serializers.CharField(), allow_null=True)


class SizeOnDateOutput(serializers.Serializer):
    model = serializers.CharField(source="size.slug")
    family = serializers.CharField(source="size.family.slug")
    stage = serializers.ChoiceField(choices=Stage.choices)
    download = DownloadAudienceOutput()


class ReleaseStateOutput(serializers.Serializer):
    at = serializers.DateTimeField()
    sizes = SizeOnDateOutput(many=True)


# --------------------------------------------------------------------------- downloads (issue 5)
class ErrorOutput(serializers.Serializer):
    error = serializers.CharField(help_text="Machine-readable reason, e.g. no_grant, grant_revoked, quota_exhausted.")
    detail = serializers.CharField()
    retry_after_s = serializers.IntegerField(required=False, help_text="Only with quota_exhausted (429).")


class LinkOutput(serializers.Serializer):
    url = serializers.URLField(help_text="Presigned GET straight to object storage; an attachment download.")
    expires_at = serializers.DateTimeField()
    bytes = serializers.IntegerField()
    sha256 = serializers.CharField()


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


class ManifestOutput(serializers.Serializer):
    model = serializers.CharField(source="size.slug")
    display_name = serializers.CharField(source="size.display_name")
    stage = serializers.ChoiceField(source="size.stage", choices=Stage.choices)
    access = AccessOutput(source="decision")
    grant = GrantOutput(source="decision.grant", allow_null=True)
    link_ttl_s = serializers.IntegerField()
    files = ManifestFileOutput(many=True)
