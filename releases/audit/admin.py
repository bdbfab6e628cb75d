"""The audit trail in the admin: read-only, for policy staff."""

from django.contrib import admin

from releases.admin_base import GovernanceAdmin
from releases.audit.models import AuditCheckpoint, AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(GovernanceAdmin):
    list_display = ["id", "seq", "at", "actor_label", "action", "target_label", "before", "after", "ip"]
    list_filter = ["action", "target_type"]
    search_fields = ["target_label", "actor_label", "reason"]
    ordering = ["-id"]
    fields = ["id", "seq", "at", "actor_label", "actor_id", "action", "target_type", "target_id", "target_label",
              "before", "after", "reason", "ip", "data", "prev_hash", "hash"]
    readonly_fields = fields


@admin.register(AuditCheckpoint)
class AuditCheckpointAdmin(GovernanceAdmin):
    list_display = ["seq", "head", "sealed_at", "key_id", "published_at"]
    fields = ["seq", "head", "sealed_at", "key_id", "signature", "published_at"]
    readonly_fields = fields
