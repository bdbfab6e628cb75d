"""Jobs in the admin: follow progress, start one from a form, cancel from the list."""

from django import forms
from django.contrib import admin, messages
from django.shortcuts import redirect

from config.client_ip import client_ip
from config.errors import DomainError
from releases.admin_base import GovernanceAdmin
from workers import services
from workers.errors import JobParamsInvalid
from workers.job_params import params_validate
from workers.models import Job


class JobStartForm(forms.ModelForm):
    class Meta:
        model = Job
        fields = ["kind", "params"]
        help_texts = {"params": 'JSON, e.g. {"model_size": "mini-1m", "steps": 300}'}

    def clean(self):
        data = super().clean()
        if "kind" in data and "params" in data:
            try:
                data["params"] = params_validate(data["kind"], data["params"] or {})
            except JobParamsInvalid as exc:
                fields = exc.extra.get("fields") or {}
                raise forms.ValidationError({"params": [f"{name}: {' '.join(messages)}"
                                                        for name, messages in fields.items()] or exc.message}) from exc
        return data


@admin.register(Job)
class JobAdmin(GovernanceAdmin):
    """Operators and policy staff, by their roles' job permissions (no superuser bypass)."""

    list_display = ["id", "kind", "status", "progress", "created_by", "created_at", "finished_at"]
    list_filter = ["kind", "status"]
    list_select_related = ["created_by"]
    search_fields = ["id"]
    actions = ["cancel_jobs"]
    readonly_fields = ["kind", "params", "inputs", "status", "progress", "result", "error", "attempts", "heartbeat_at",
                       "enqueued_at", "created_by", "created_at", "started_at", "finished_at"]

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = JobStartForm
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj else []

    @admin.display(description="progress")
    def progress(self, job: Job) -> str:
        if not job.progress_total:
            return "—"
        return f"{job.progress_done:,} / {job.progress_total:,} {job.progress_unit}"

    def save_model(self, request, obj, form, change):
        if change:  # a job's record is the workers' to write; staff start new jobs or cancel them
            return
        try:
            job = services.job_submit(kind=obj.kind, params=obj.params, user=request.user, ip=client_ip(request))
        except DomainError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return
        obj.pk = job.pk

    def response_add(self, request, obj, post_url_continue=None):
        if obj.pk is None:
            return redirect("admin:workers_job_changelist")
        self.message_user(request, f"Started job {obj.pk}.", messages.SUCCESS)
        return redirect("admin:workers_job_change", obj.pk)

    def log_addition(self, request, obj, message):
        if obj.pk is not None:
            super().log_addition(request, obj, message)

    @admin.action(description="Cancel the selected jobs")
    def cancel_jobs(self, request, queryset):
        for job in queryset:
            try:
                services.job_cancel(job=job, user=request.user, ip=client_ip(request))
                self.message_user(request, f"Cancelled job {job.pk}.", messages.SUCCESS)
            except DomainError as exc:
                self.message_user(request, exc.message, messages.ERROR)
