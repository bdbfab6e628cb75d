"""Admin for the registry. Derived and server-built fields are read-only; stage moves only via releases."""

from django.contrib import admin
from django.db.models import Count

from registry.models import Artifact, EvalResult, ModelCard, ModelFamily, ModelSize, TrainingRun


@admin.register(ModelFamily)
class ModelFamilyAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "bundled", "size_count"]
    list_filter = ["bundled"]
    search_fields = ["name", "slug"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_size_count=Count("sizes"))

    @admin.display(description="sizes", ordering="_size_count")
    def size_count(self, family: ModelFamily) -> int:
        return family._size_count


class ArtifactInline(admin.TabularInline):
    model = Artifact
    extra = 0
    can_delete = False
    fields = ["filename", "format", "bytes", "sha256", "training_run", "created_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False  # files enter through artifact_register (S3 upload + sha256), not a form


class EvalResultInline(admin.TabularInline):
    model = EvalResult
    extra = 0
    fields = ["dataset", "metric", "value", "source"]


@admin.register(ModelSize)
class ModelSizeAdmin(admin.ModelAdmin):
    list_display = ["slug", "family", "display_name", "stage", "parameters", "n_layer", "n_embd", "n_head"]
    list_filter = ["family", "stage"]
    list_select_related = ["family"]
    search_fields = ["slug", "display_name", "family__name"]
    readonly_fields = ["stage", "parameters", "created_at"]
    fields = [
        "family", "slug", "display_name", "historical_names", "order",
        ("n_vocab", "n_ctx"), ("n_embd", "n_head", "n_layer"), "parameters", "stage", "created_at",
    ]
    inlines = [ArtifactInline, EvalResultInline]

    @admin.display(description="parameters")
    def parameters(self, size: ModelSize) -> str:
        return f"{size.parameter_count:,}" if size.pk or size.n_embd else "—"


@admin.register(Artifact)
class ArtifactAdmin(admin.ModelAdmin):
    list_display = ["filename", "model_size", "format", "bytes", "short_sha256", "created_at"]
    list_filter = ["format", "model_size__family"]
    list_select_related = ["model_size"]
    search_fields = ["filename", "model_size__slug", "sha256"]
    readonly_fields = ["model_size", "training_run", "filename", "format", "s3_key", "bytes", "sha256", "created_at"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description="sha256")
    def short_sha256(self, artifact: Artifact) -> str:
        return artifact.sha256[:12] + "…"


@admin.register(ModelCard)
class ModelCardAdmin(admin.ModelAdmin):
    list_display = ["model_size", "updated_at"]
    list_select_related = ["model_size__family"]
    search_fields = ["model_size__slug"]


@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    list_display = ["id", "model_size", "corpus", "steps", "final_val_loss", "created_at", "finished_at"]
    list_filter = ["model_size__family"]
    list_select_related = ["model_size"]
    search_fields = ["model_size__slug", "corpus"]
    readonly_fields = ["loss_curve", "created_at"]


@admin.register(EvalResult)
class EvalResultAdmin(admin.ModelAdmin):
    list_display = ["model_size", "dataset", "metric", "value", "source", "created_at"]
    list_filter = ["dataset", "metric", "model_size__family"]
    list_select_related = ["model_size"]
    search_fields = ["model_size__slug", "dataset"]


from registry.datasets import admin as datasets_admin  # noqa: E402, F401  (registers the dataset admin)
