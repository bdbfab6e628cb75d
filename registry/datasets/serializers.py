"""Output shapes of the dataset API."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from registry.datasets.selectors import latest_detection
from registry.models import DatasetSplit, DetectionResult, OutputDataset


class SamplingOutput(serializers.Serializer):
    temperature = serializers.FloatField()
    top_k = serializers.IntegerField()
    top_p = serializers.FloatField()
    # Recorded by generation jobs (absent on datasets made before they were).
    device = serializers.CharField(required=False, help_text="cpu or cuda")
    precision = serializers.CharField(required=False, help_text="What the model computed in: fp32, or bf16 on cuda.")
    weights = serializers.CharField(required=False, help_text="fp32, or int8 (per-row scales, fp32 compute).")


class SplitOutput(serializers.ModelSerializer):
    filename = serializers.CharField(read_only=True)

    class Meta:
        model = DatasetSplit
        fields = ["split", "filename", "lines", "bytes", "sha256"]


class StatisticsOutput(serializers.Serializer):
    lines = serializers.IntegerField()
    mean_length = serializers.FloatField(help_text="Mean sample length in tokens.")
    fraction_ended = serializers.FloatField(help_text="Share of samples that reached end-of-text before the cap.")
    length_histogram = serializers.ListField(child=serializers.IntegerField(),
                                             help_text="Sample counts in 16 equal bins of length up to the max.")
    length_histogram_max = serializers.IntegerField()


class DetectionOutput(serializers.ModelSerializer):
    reference = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = DetectionResult
        fields = ["method", "reference", "accuracy", "valid_accuracy", "c", "train_pairs", "test_pairs"]


class DatasetOutput(serializers.ModelSerializer):
    model_size = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    revision = serializers.SlugRelatedField(slug_field="revision", read_only=True, allow_null=True,
                                            help_text="The revision sampled (none for human reference text).")
    sampling = serializers.SerializerMethodField()
    splits = SplitOutput(many=True)
    statistics = serializers.SerializerMethodField()
    detection = serializers.SerializerMethodField()

    class Meta:
        model = OutputDataset
        fields = ["name", "kind", "model_size", "sampling", "max_length", "source", "splits", "statistics",
                  "detection", "card", "stage", "revision"]

    @extend_schema_field(SamplingOutput(allow_null=True))
    def get_sampling(self, dataset: OutputDataset) -> dict | None:
        return SamplingOutput(dataset.sampling).data if dataset.sampling else None

    @extend_schema_field(StatisticsOutput)
    def get_statistics(self, dataset: OutputDataset) -> dict:
        stats = dataset.stats or {}
        return {key: stats.get(key) for key in StatisticsOutput().fields}

    @extend_schema_field(DetectionOutput(allow_null=True))
    def get_detection(self, dataset: OutputDataset) -> dict | None:
        result = latest_detection(dataset)
        return DetectionOutput(result).data if result is not None else None
