"""Output shapes of the registry API."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from registry.models import Artifact, EvalResult, ModelCard, ModelFamily, ModelSize, Revision


class FamilySerializer(serializers.ModelSerializer):
    class Meta:
        model = ModelFamily
        fields = ["slug", "name", "description", "bundled"]


class HParamsSerializer(serializers.Serializer):
    n_vocab = serializers.IntegerField()
    n_ctx = serializers.IntegerField()
    n_embd = serializers.IntegerField()
    n_head = serializers.IntegerField()
    n_layer = serializers.IntegerField()


class ArtifactSerializer(serializers.ModelSerializer):
    class Meta:
        model = Artifact
        fields = ["filename", "bytes", "sha256", "format", "created_at"]


class ModelCardSerializer(serializers.ModelSerializer):
    class Meta:
        model = ModelCard
        fields = [*ModelCard.SECTIONS, "updated_at"]


class EvalResultSerializer(serializers.ModelSerializer):
    class Meta:
        model = EvalResult
        fields = ["dataset", "metric", "value", "source", "created_at"]


class ModelSizeSummarySerializer(serializers.ModelSerializer):
    family = FamilySerializer()
    hparams = serializers.SerializerMethodField()
    parameter_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = ModelSize
        fields = ["slug", "display_name", "historical_names", "family", "stage", "hparams", "parameter_count"]

    @extend_schema_field(HParamsSerializer)
    def get_hparams(self, size: ModelSize) -> dict:
        return size.hparams.as_dict()


class RevisionSummarySerializer(serializers.ModelSerializer):
    class Meta:
        model = Revision
        fields = ["revision", "number", "stage", "created_at"]


class ModelSizeDetailSerializer(ModelSizeSummarySerializer):
    """A size with the revisions the caller may know of (context `revisions`, newest first): `artifacts` are the
    files of the first of them, the one a download would serve."""

    revision = serializers.SerializerMethodField()
    revisions = serializers.SerializerMethodField()
    artifacts = serializers.SerializerMethodField()
    card = serializers.SerializerMethodField()
    evals = EvalResultSerializer(many=True)

    class Meta(ModelSizeSummarySerializer.Meta):
        fields = [*ModelSizeSummarySerializer.Meta.fields, "revision", "revisions", "artifacts", "card", "evals"]

    def _revisions(self) -> list[Revision]:
        return list(self.context.get("revisions", []))

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_revision(self, size: ModelSize) -> str | None:
        shown = self._revisions()
        return shown[0].revision if shown else None

    @extend_schema_field(RevisionSummarySerializer(many=True))
    def get_revisions(self, size: ModelSize) -> list[dict]:
        return RevisionSummarySerializer(self._revisions(), many=True).data

    @extend_schema_field(ArtifactSerializer(many=True))
    def get_artifacts(self, size: ModelSize) -> list[dict]:
        shown = self._revisions()
        return ArtifactSerializer(shown[0].artifacts.order_by("filename"), many=True).data if shown else []

    @extend_schema_field(ModelCardSerializer(allow_null=True))
    def get_card(self, size: ModelSize) -> dict | None:
        card = getattr(size, "card", None)
        return ModelCardSerializer(card).data if card is not None else None
