"""Input and output shapes of the jobs API."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from workers.models import Job


class JobInputSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=Job.Kind.choices)
    params = serializers.DictField(help_text="Kind-specific; e.g. {\"model_size\": \"mini-1m\", \"steps\": 300}.")


class ProgressSerializer(serializers.Serializer):
    done = serializers.IntegerField()
    total = serializers.IntegerField()
    unit = serializers.CharField()


class JobSerializer(serializers.ModelSerializer):
    progress = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = ["id", "kind", "params", "inputs", "status", "progress", "result", "error", "attempts",
                  "created_at", "started_at", "finished_at"]

    @extend_schema_field(ProgressSerializer)
    def get_progress(self, job: Job) -> dict:
        return {"done": job.progress_done, "total": job.progress_total, "unit": job.progress_unit}
