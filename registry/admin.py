"""Admin for the registry. Derived and server-built fields are read-only; stage moves and dataset publication
are release decisions (the release app's admin), never fields here. Every save and delete goes through the
registry's services with the user and their address, so each is announced and audited (registry/changes.py)."""

from django.contrib import admin
from django.db import transaction
from django.db.models import Count

from config.client_ip import client_ip
from registry import services
from registry.datasets.removal import removal_request_handle
from registry.models import (
    Artifact,
    DataRemovalRequest,
    DatasetSplit,
    DetectionResult,
    EvalResult,
    ModelCard,
    ModelFamily,
    ModelSize,
    OutputDataset,
    TrainingRun,
)


class AuditedDeletes:
    """Deletes, one by one or from the changelist's action, through the service that announces each."""

    def delete_model(self, request, obj) -> None:
        services.registry_record_delete(obj=obj, actor=request.user, ip=client_ip(request))

    def delete_queryset(self, request, queryset) -> None:
        with transaction.atomic():  # all selected or none, as Django's own bulk delete
            for obj in queryset:
                services.registry_record_delete(obj=obj, actor=request.user, ip=client_ip(request))


@admin.register(ModelFamily)
class ModelFamilyAdmin(AuditedDeletes, admin.ModelAdmin):
    list_display = ["name", "slug", "bundled", "size_count"]
    list_filter = ["bundled"]
    search_fields = ["name", "slug"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_size_count=Count("sizes"))

    @admin.display(description="sizes", ordering="_size_count")
    def size_count(self, family: ModelFamily) -> int:
        return family._size_count

    def save_model(self, request, obj, form, change) -> None:
        services.family_save(family=obj, actor=request.user, ip=client_ip(request))


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
class ModelSizeAdmin(AuditedDeletes, admin.ModelAdmin):
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

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.artifacts.exists():  # the stored weights fix the shape
            return [*self.readonly_fields, "n_vocab", "n_ctx", "n_embd", "n_head", "n_layer"]
        return self.readonly_fields

    @admin.display(description="parameters")
    def parameters(self, size: ModelSize) -> str:
        return f"{size.parameter_count:,}" if size.pk or size.n_embd else "—"

    def save_model(self, request, obj, form, change) -> None:
        # The service also gives a new size its first revision, as every size has one.
        services.model_size_save(size=obj, actor=request.user, ip=client_ip(request))

    def save_formset(self, request, form, formset, change) -> None:
        if formset.model is not EvalResult:  # the files inline is read-only
            return super().save_formset(request, form, formset, change)
        formset.save(commit=False)
        for result in formset.deleted_objects:
            services.registry_record_delete(obj=result, actor=request.user, ip=client_ip(request))
        for result in [*formset.new_objects, *(obj for obj, _fields in formset.changed_objects)]:
            services.eval_result_save(result=result, actor=request.user, ip=client_ip(request))


@admin.register(Artifact)
class ArtifactAdmin(admin.ModelAdmin):
    list_display = ["filename", "model_size", "format", "bytes", "short_sha256", "created_at"]
    list_filter = ["format", "model_size__family"]
    list_select_related = ["model_size"]
    search_fields = ["filename", "model_size__slug", "sha256"]
    readonly_fields = ["model_size", "training_run", "filename", "format", "s3_key", "bytes", "sha256", "created_at"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # files enter and leave through artifact_register (audited), never through a form

    @admin.display(description="sha256")
    def short_sha256(self, artifact: Artifact) -> str:
        return artifact.sha256[:12] + "…"


@admin.register(ModelCard)
class ModelCardAdmin(AuditedDeletes, admin.ModelAdmin):
    list_display = ["model_size", "updated_at"]
    list_select_related = ["model_size__family"]
    search_fields = ["model_size__slug"]

    def save_model(self, request, obj, form, change) -> None:
        services.model_card_save(card=obj, actor=request.user, ip=client_ip(request))


@admin.register(TrainingRun)
class TrainingRunAdmin(AuditedDeletes, admin.ModelAdmin):
    list_display = ["id", "model_size", "corpus", "steps", "final_val_loss", "created_at", "finished_at"]
    list_filter = ["model_size__family"]
    list_select_related = ["model_size"]
    search_fields = ["model_size__slug", "corpus"]
    readonly_fields = ["loss_curve", "created_at"]

    def save_model(self, request, obj, form, change) -> None:
        services.training_run_save(run=obj, actor=request.user, ip=client_ip(request))


@admin.register(EvalResult)
class EvalResultAdmin(AuditedDeletes, admin.ModelAdmin):
    list_display = ["model_size", "dataset", "metric", "value", "source", "created_at"]
    list_filter = ["dataset", "metric", "model_size__family"]
    list_select_related = ["model_size"]
    search_fields = ["model_size__slug", "dataset"]

    def save_model(self, request, obj, form, change) -> None:
        services.eval_result_save(result=obj, actor=request.user, ip=client_ip(request))


# --------------------------------------------------------------------------- output datasets
class ReadOnlyMixin:
    """Data made by the workers: viewed here, never edited or deleted in a form."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class DatasetSplitInline(ReadOnlyMixin, admin.TabularInline):
    model = DatasetSplit
    extra = 0
    fields = ["split", "lines", "bytes", "sha256", "s3_key"]
    readonly_fields = fields


class DetectionResultInline(ReadOnlyMixin, admin.TabularInline):
    model = DetectionResult
    fk_name = "dataset"
    extra = 0
    fields = ["reference", "method", "accuracy", "valid_accuracy", "c", "train_pairs", "test_pairs", "created_at"]
    readonly_fields = fields


@admin.register(OutputDataset)
class OutputDatasetAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["name", "kind", "model_size", "stage", "split_count", "max_length", "created_at"]
    list_filter = ["kind", "stage", "model_size__family"]
    list_select_related = ["model_size"]
    search_fields = ["name", "model_size__slug"]
    readonly_fields = ["name", "kind", "model_size", "sampling", "max_length", "source", "stats", "card",
                       "stage", "created_at"]
    inlines = [DatasetSplitInline, DetectionResultInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_split_count=Count("splits"))

    @admin.display(description="splits", ordering="_split_count")
    def split_count(self, dataset: OutputDataset) -> int:
        return dataset._split_count


@admin.register(DatasetSplit)
class DatasetSplitAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["dataset", "split", "lines", "bytes", "sha256"]
    list_filter = ["split"]
    list_select_related = ["dataset"]
    search_fields = ["dataset__name", "sha256"]


@admin.register(DetectionResult)
class DetectionResultAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["dataset", "reference", "method", "accuracy", "valid_accuracy", "c", "created_at"]
    list_select_related = ["dataset", "reference"]
    search_fields = ["dataset__name"]


@admin.register(DataRemovalRequest)
class DataRemovalRequestAdmin(admin.ModelAdmin):
    """Staff read each request and record what they did; what the requester sent is not editable."""

    list_display = ["id", "created_at", "dataset", "name", "email", "status"]
    list_filter = ["status", "dataset"]
    list_select_related = ["dataset"]
    search_fields = ["name", "email", "text", "dataset__name"]
    readonly_fields = ["name", "email", "dataset", "text", "reason", "ip", "created_at"]
    fields = [*readonly_fields, "status", "staff_notes"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj, form, change) -> None:
        removal_request_handle(request=obj, actor=request.user, ip=client_ip(request))
