"""Input and output shapes of the release-governance API."""

from rest_framework import serializers

from releases.governance.factors import FACTORS
from releases.governance.models import StageChange, StageChangeRequest, StageDecision, StageRequestComment
from releases.stage_names import Stage


# --------------------------------------------------------------------------- input
class StageRequestCreateInput(serializers.Serializer):
    revision = serializers.RegexField(r"^[0-9a-f]{40}$", required=False,
                                      help_text="The revision to move (40 hex digits); default: the newest.")
    all_revisions = serializers.BooleanField(default=False,
                                             help_text="Withdraw the whole size: every revision (to_stage withdrawn).")
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


class PurgeInput(serializers.Serializer):
    reason = serializers.CharField(max_length=20000)


class PurgeOutput(serializers.Serializer):
    revision = serializers.CharField()
    objects_deleted = serializers.ListField(child=serializers.CharField())


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


class CommentOutput(serializers.ModelSerializer):
    by = serializers.CharField(source="author.username")

    class Meta:
        model = StageRequestComment
        fields = ["by", "text", "created_at"]


class DatasetStageRequestInput(serializers.Serializer):
    to_stage = serializers.ChoiceField(choices=Stage.choices)
    rationale = serializers.CharField(trim_whitespace=True, max_length=20000)
    public_rationale = serializers.CharField(required=False, allow_blank=True, default="", max_length=5000)
    factors = serializers.DictField(child=serializers.CharField(allow_blank=True, max_length=5000), required=False,
                                    default=dict)
    effective_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
    review_by = serializers.DateField(required=False, allow_null=True, default=None)


class StageRequestOutput(serializers.ModelSerializer):
    model = serializers.CharField(source="model_size.slug", allow_null=True, default=None)
    revision = serializers.CharField(source="revision.revision", allow_null=True, default=None)
    dataset = serializers.CharField(source="dataset.name", allow_null=True, default=None)
    subject = serializers.JSONField(help_text="What it releases, as filed: the revision and its files' digests, "
                                              "or the dataset's splits.")
    requested_by = serializers.CharField(source="requested_by.username", allow_null=True, default=None)
    decisions = DecisionOutput(many=True)
    comments = CommentOutput(many=True, help_text="The request's discussion among policy staff, oldest first.")
    approvals = serializers.SerializerMethodField()

    class Meta:
        model = StageChangeRequest
        fields = [
            "id", "model", "revision", "dataset", "subject", "from_stage", "to_stage", "status", "rationale",
            "public_rationale", "factors",
            "effective_at", "review_by", "approvals_required", "approvals", "requested_by", "decisions",
            "comments", "historical", "created_at", "decided_at", "applied_at",
        ]

    def get_approvals(self, request: StageChangeRequest) -> int:
        annotated = getattr(request, "approval_count", None)
        if annotated is not None:
            return annotated
        return sum(1 for decision in request.decisions.all() if decision.verdict == StageDecision.Verdict.APPROVE)


class PublicHistoryOutput(serializers.ModelSerializer):
    """What anyone may read about a size's applied changes: never the internal rationale or factors."""

    public_rationale = serializers.CharField(source="request.public_rationale")
    revision = serializers.CharField(source="revision.revision", allow_null=True, default=None,
                                     help_text="The revision moved; empty when the whole size was withdrawn.")

    class Meta:
        model = StageChange
        fields = ["revision", "from_stage", "to_stage", "applied_at", "public_rationale"]


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


class MemberOnDateOutput(serializers.Serializer):
    username = serializers.CharField()
    terms_version = serializers.CharField(allow_null=True, help_text="The terms in force then, if accepted by then.")


class OrganisationOnDateOutput(serializers.Serializer):
    name = serializers.CharField()
    grant_id = serializers.IntegerField()
    members = MemberOnDateOutput(many=True)


class DownloadAudienceOutput(serializers.Serializer):
    audience = serializers.CharField()
    description = serializers.CharField()
    grantees = serializers.ListField(child=serializers.CharField(), allow_null=True)
    organisations = OrganisationOnDateOutput(many=True, allow_null=True)


class SizeOnDateOutput(serializers.Serializer):
    model = serializers.CharField(source="size.slug")
    family = serializers.CharField(source="size.family.slug")
    stage = serializers.ChoiceField(choices=Stage.choices)
    download = DownloadAudienceOutput()


class RevisionOnDateOutput(serializers.Serializer):
    model = serializers.CharField(source="revision.model_size.slug")
    revision = serializers.CharField(source="revision.revision")
    stage = serializers.ChoiceField(choices=Stage.choices)
    download = DownloadAudienceOutput()


class DatasetOnDateOutput(serializers.Serializer):
    dataset = serializers.CharField(source="dataset.name")
    model = serializers.CharField(source="dataset.model_size.slug", allow_null=True, default=None)
    revision = serializers.CharField(source="dataset.revision.revision", allow_null=True, default=None)
    stage = serializers.ChoiceField(choices=Stage.choices)
    download = DownloadAudienceOutput()


class ReleaseStateOutput(serializers.Serializer):
    at = serializers.DateTimeField()
    sizes = SizeOnDateOutput(many=True)
    revisions = RevisionOnDateOutput(many=True)
    datasets = DatasetOnDateOutput(many=True)
