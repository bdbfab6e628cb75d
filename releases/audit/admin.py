"""The audit trail in the admin: read-only, for policy staff."""

from django.contrib import admin
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html

from releases.admin_base import GovernanceAdmin
from releases.audit.models import AuditCheckpoint, AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(GovernanceAdmin):
    # Newest first; before/after and the data are on each event's page, where they have room.
    list_display = ["id", "at", "who", "action", "target", "reason_short", "ip"]
    list_filter = ["action", "target_type"]
    search_fields = ["target_label", "actor_label", "reason"]
    ordering = ["-id"]
    fields = ["id", "seq", "at", "actor_label", "actor_id", "action", "target_type", "target_id", "target_label",
              "before", "after", "reason", "ip", "data", "prev_hash", "hash"]
    readonly_fields = fields

    @admin.display(description="who", ordering="actor_label")
    def who(self, event: AuditEvent) -> str:
        if not event.actor_id and (event.data or {}).get("anonymous"):
            return "anonymous"  # a download without an account, not the platform itself
        return event.actor_label

    @admin.display(description="target", ordering="target_label")
    def target(self, event: AuditEvent) -> str:
        app_model = (event.target_type or "").replace(".", "_")
        try:
            url = reverse(f"admin:{app_model}_change", args=[event.target_id]) if event.target_id else None
        except NoReverseMatch:
            url = None
        return format_html('<a href="{}">{}</a>', url, event.target_label) if url else event.target_label

    @admin.display(description="reason")
    def reason_short(self, event: AuditEvent) -> str:
        return event.reason if len(event.reason or "") <= 80 else f"{event.reason[:77]}…"


@admin.register(AuditCheckpoint)
class AuditCheckpointAdmin(GovernanceAdmin):
    list_display = ["seq", "head", "sealed_at", "key_id", "published_at"]
    fields = ["seq", "head", "sealed_at", "key_id", "signature", "published_at"]
    readonly_fields = fields
