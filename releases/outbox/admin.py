"""The outbox in the admin: what was sent, what is retrying and why, and sending a message again."""

from django.contrib import admin, messages
from django.utils import timezone

from releases.admin_base import GovernanceAdmin
from releases.outbox.models import OutboxMessage


@admin.register(OutboxMessage)
class OutboxMessageAdmin(GovernanceAdmin):
    list_display = ["id", "channel", "event", "created_at", "attempts", "sent_at", "failed_at", "last_error"]
    list_filter = ["channel", "event", ("sent_at", admin.EmptyFieldListFilter),
                   ("failed_at", admin.EmptyFieldListFilter)]
    fields = ["uid", "channel", "event", "recipients", "url", "subject", "body", "created_at", "next_attempt_at",
              "attempts", "last_error", "sent_at", "failed_at"]
    readonly_fields = fields
    actions = ["send_again"]

    @admin.action(description="Send again now (same message, same id)")
    def send_again(self, request, queryset):
        count = queryset.update(sent_at=None, failed_at=None, next_attempt_at=timezone.now())
        self.message_user(request, f"{count} message(s) will be sent again within seconds.", messages.SUCCESS)
