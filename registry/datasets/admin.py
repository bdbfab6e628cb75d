"""Admin for output datasets: read-only data; publishing and unpublishing as audited staff decisions."""

from django import forms
from django.contrib import admin
from django.db.models import Count

from registry.models import DataRemovalRequest, DatasetSplit, DetectionResult, OutputDataset
from releases.admin import PolicyStaffViewMixin
from releases.audit import client_ip
from releases.datasets import dataset_publish, dataset_unpublish
from releases.partner_admin import _reason_page
from releases.roles import is_policy_staff


class PublishForm(forms.Form):
    despite_unreleased_size = forms.BooleanField(
        required=False, label="Publish although the size is not public",
        help_text="An explicit release decision (as GPT-2's samples of unreleased sizes were published).")
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False,
                             help_text="Required when the size is not public; recorded in the audit trail.")


class UnpublishForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), help_text="Recorded in the audit trail.")


class ReadOnlyMixin(PolicyStaffViewMixin):
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
    list_display = ["name", "kind", "model_size", "published_at", "split_count", "max_length", "created_at"]
    list_filter = ["kind", ("published_at", admin.EmptyFieldListFilter), "model_size__family"]
    list_select_related = ["model_size"]
    search_fields = ["name", "model_size__slug"]
    readonly_fields = ["name", "kind", "model_size", "sampling", "max_length", "source", "stats", "card",
                       "published_at", "created_at"]
    inlines = [DatasetSplitInline, DetectionResultInline]
    actions = ["publish", "unpublish"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_split_count=Count("splits"))

    @admin.display(description="splits", ordering="_split_count")
    def split_count(self, dataset: OutputDataset) -> int:
        return dataset._split_count

    @admin.action(description="Publish (an audited release decision)")
    def publish(self, request, queryset):
        form = PublishForm(request.POST if "reason" in request.POST else None)
        return _reason_page(self, request, queryset, action="publish", title="Publish datasets", form=form,
                            call=lambda dataset, data: dataset_publish(
                                dataset=dataset, actor=request.user, reason=data["reason"],
                                despite_unreleased_size=data["despite_unreleased_size"], ip=client_ip(request)))

    @admin.action(description="Unpublish (an audited release decision)")
    def unpublish(self, request, queryset):
        form = UnpublishForm(request.POST if "reason" in request.POST else None)
        return _reason_page(self, request, queryset, action="unpublish", title="Unpublish datasets", form=form,
                            call=lambda dataset, data: dataset_unpublish(
                                dataset=dataset, actor=request.user, reason=data["reason"], ip=client_ip(request)))


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
class DataRemovalRequestAdmin(PolicyStaffViewMixin, admin.ModelAdmin):
    """Staff read each request and record what they did; what the requester sent is not editable."""

    list_display = ["id", "created_at", "dataset", "name", "email", "status"]
    list_filter = ["status", "dataset"]
    list_select_related = ["dataset"]
    search_fields = ["name", "email", "text", "dataset__name"]
    readonly_fields = ["name", "email", "dataset", "text", "reason", "ip", "created_at"]
    fields = [*readonly_fields, "status", "staff_notes"]

    def has_change_permission(self, request, obj=None) -> bool:
        return is_policy_staff(request.user) or super().has_change_permission(request, obj)

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
