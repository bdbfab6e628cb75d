"""Output shapes of the registry API."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from registry.models import Artifact, EvalResult, ModelCard, ModelFamily, ModelSize


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


class ModelSizeDetailSerializer(ModelSizeSummarySerializer):
    artifacts = ArtifactSerializer(many=True)
    card = serializers.SerializerMethodField()
    evals = EvalResultSerializer(many=True)

    class Meta(ModelSizeSummarySerializer.Meta):
        fields = [*ModelSizeSummarySerializer.Meta.fields, "artifacts", "card", "evals"]

    @extend_schema_field(ModelCardSerializer(allow_null=True))
    def get_card(self, size: ModelSize) -> dict | None:
        card = getattr(size, "card", None)
        return ModelCardSerializer(card).data if card is not None else None
