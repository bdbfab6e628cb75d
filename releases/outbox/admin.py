"""The outbox in the admin: what was sent, what is retrying and why, and sending a message again."""

from django import forms
from django.contrib import admin, messages
from django.utils.html import format_html

from config.client_ip import client_ip
from releases.admin_base import GovernanceAdmin, GovernanceInline
from releases.outbox.delivery import messages_send_again
from releases.outbox.models import OutboxMessage, WebhookSubscription
from releases.outbox.subscriptions import webhook_subscription_save
from releases.outbox.webhook_urls import WebhookUrlRefused, webhook_url_check
from releases.roles import MANAGE_WEBHOOKS, can


@admin.register(OutboxMessage)
class OutboxMessageAdmin(GovernanceAdmin):
    list_display = ["id", "channel", "event", "created_at", "attempts", "sent_at", "failed_at", "last_error"]
    list_filter = ["channel", "event", "subscription", ("sent_at", admin.EmptyFieldListFilter),
                   ("failed_at", admin.EmptyFieldListFilter)]
    fields = ["uid", "channel", "event", "recipients", "url", "subject", "shown_body", "created_at", "next_attempt_at",
              "attempts", "last_error", "sent_at", "failed_at"]
    readonly_fields = fields
    actions = ["send_again"]

    @admin.display(description="body")
    def shown_body(self, message: OutboxMessage) -> str:
        return "(hidden: it carries a secret link for its addressee only)" if message.confidential else message.body

    def has_send_again_permission(self, request) -> bool:
        return can(request.user, MANAGE_WEBHOOKS)

    @admin.action(description="Send again now (same message, same id)", permissions=["send_again"])
    def send_again(self, request, queryset):
        count = messages_send_again(messages=queryset, actor=request.user, ip=client_ip(request))
        self.message_user(request, f"{count} message(s) will be sent again within seconds.", messages.SUCCESS)



class SubscriptionForm(forms.ModelForm):
    url = forms.URLField(max_length=1000, assume_scheme="https",
                         help_text="https, or a host on STAGEGATE_WEBHOOK_ALLOWED_HOSTS.")
    events = forms.MultipleChoiceField(choices=WebhookSubscription.Events.choices,
                                       widget=forms.CheckboxSelectMultiple, help_text="What it receives.")

    class Meta:
        model = WebhookSubscription
        fields = ["name", "url", "events", "active"]

    def clean_url(self) -> str:
        url = self.cleaned_data["url"]
        try:
            webhook_url_check(url)
        except WebhookUrlRefused as refused:
            raise forms.ValidationError(str(refused)) from None
        return url


class DeliveryInline(GovernanceInline):
    """The delivery log: every message sent (or being retried) to this receiver, newest first."""

    model = OutboxMessage
    fk_name = "subscription"
    verbose_name, verbose_name_plural = "delivery", "deliveries (newest first; send again from the outbox)"
    can_delete = False
    fields = ["event", "created_at", "attempts", "sent_at", "failed_at", "last_error"]
    readonly_fields = fields
    ordering = ["-created_at"]
    max_num = 0


@admin.register(WebhookSubscription)
class WebhookSubscriptionAdmin(GovernanceAdmin):
    form = SubscriptionForm
    list_display = ["name", "url", "events", "active", "created_by", "created_at"]
    inlines = [DeliveryInline]

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else []  # a new receiver has no deliveries yet

    def save_model(self, request, obj, form, change):
        secret = webhook_subscription_save(subscription=obj, actor=request.user, ip=client_ip(request))
        if secret:
            self.message_user(request, format_html(
                "Webhook “{}” registered. Its secret, shown once: <code>{}</code>. The receiver checks "
                "<code>X-Stagegate-Signature-Timed</code> (t=…,v1=HMAC-SHA256 of “t.” + body) with it.",
                obj.name, secret), messages.WARNING)
