"""Admin for partners, members, terms, access requests, grants (grant/refuse/revoke with a reason), issued
links and API tokens. Every write goes through releases/partners.py or releases/grants.py (audited); the
grant page shows what `may` answers each member now. Imported by releases/admin.py."""

from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.db.models import Count
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html_join
from knox.models import AuthToken

from config.errors import DomainError
from releases import access, grants, partners
from releases.admin import PolicyStaffViewMixin
from releases.audit import client_ip
from releases.models import (
    AccessGrant,
    AccessRequest,
    IssuedLink,
    PartnerMember,
    PartnerOrganisation,
    TermsAcceptance,
    TermsVersion,
)
from releases.roles import is_policy_staff


class ReasonForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), help_text="Recorded and shown to the partner.")


class GrantDecisionForm(forms.Form):
    expires_in_days = forms.IntegerField(min_value=1, max_value=3650, initial=180)
    quota_links = forms.IntegerField(min_value=1, required=False, help_text="Links per file per period; empty: none.")
    quota_period_s = forms.IntegerField(min_value=1, required=False, initial=86400)
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)


def _reason_page(admin_obj, request, queryset, *, action: str, title: str, form, call) -> TemplateResponse | None:
    """An action that needs a form (a reason, a grant's terms): show it, then apply `call` to each object."""
    if form.is_bound and form.is_valid():
        done = 0
        for obj in queryset:
            try:
                call(obj, form.cleaned_data)
                done += 1
            except DomainError as error:
                admin_obj.message_user(request, f"{obj}: {error.message}", messages.ERROR)
        if done:
            admin_obj.message_user(request, f"{title}: {done} done.", messages.SUCCESS)
        return None
    return TemplateResponse(request, "admin/releases/reason_form.html", {
        **admin_obj.admin_site.each_context(request), "opts": admin_obj.model._meta, "title": title, "form": form,
        "queryset": queryset, "action": action, "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
    })


def _bound(request, form_class, field: str):
    return form_class(request.POST if field in request.POST else None)


class StaffWriteMixin(PolicyStaffViewMixin):
    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return is_policy_staff(request.user) or super().has_add_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # records stay; they are revoked or deactivated instead


# --------------------------------------------------------------------------- organisations and members
class PartnerMemberInline(admin.TabularInline):
    model = PartnerMember
    extra = 1
    fields = ["user", "added_at"]
    readonly_fields = ["added_at"]
    autocomplete_fields = ["user"]

    def has_view_permission(self, request, obj=None) -> bool:
        return is_policy_staff(request.user) or super().has_view_permission(request, obj)

    def has_add_permission(self, request, obj=None) -> bool:
        return is_policy_staff(request.user)

    def has_change_permission(self, request, obj=None) -> bool:
        return is_policy_staff(request.user)

    def has_delete_permission(self, request, obj=None) -> bool:
        return is_policy_staff(request.user)


@admin.register(PartnerOrganisation)
class PartnerOrganisationAdmin(StaffWriteMixin, admin.ModelAdmin):
    list_display = ["name", "kind", "active", "member_count", "contact_email"]
    list_filter = ["kind", "active"]
    search_fields = ["name", "contact_email"]
    fields = ["name", "kind", "contact_name", "contact_email", "active", "created_at"]
    readonly_fields = ["active", "created_at"]
    inlines = [PartnerMemberInline]
    actions = ["deactivate_selected", "activate_selected"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_members=Count("members"))

    def has_change_permission(self, request, obj=None) -> bool:
        return is_policy_staff(request.user)

    @admin.display(description="members", ordering="_members")
    def member_count(self, partner) -> int:
        return partner._members

    def save_model(self, request, obj, form, change) -> None:
        if change:
            obj.save()
            return
        created = partners.partner_create(name=obj.name, kind=obj.kind, contact_name=obj.contact_name,
                                          contact_email=obj.contact_email, actor=request.user, ip=client_ip(request))
        obj.pk, obj.created_at = created.pk, created.created_at

    def save_formset(self, request, form, formset, change) -> None:
        # Members join and leave through the services, so each change is audited.
        formset.save(commit=False)
        for member in formset.deleted_objects:
            partners.partner_member_remove(member=member, actor=request.user, ip=client_ip(request))
        for member in formset.new_objects:
            partners.partner_member_add(partner=form.instance, user=member.user, actor=request.user,
                                        ip=client_ip(request))

    @admin.action(description="Deactivate selected partners (reason required): no new links for their members")
    def deactivate_selected(self, request, queryset):
        return _reason_page(self, request, queryset, action="deactivate_selected", title="Deactivate partners",
                            form=_bound(request, ReasonForm, "reason"),
                            call=lambda p, data: partners.partner_set_active(
                                partner=p, active=False, actor=request.user, reason=data["reason"],
                                ip=client_ip(request)))

    @admin.action(description="Reactivate selected partners (reason required)")
    def activate_selected(self, request, queryset):
        return _reason_page(self, request, queryset, action="activate_selected", title="Reactivate partners",
                            form=_bound(request, ReasonForm, "reason"),
                            call=lambda p, data: partners.partner_set_active(
                                partner=p, active=True, actor=request.user, reason=data["reason"],
                                ip=client_ip(request)))


# --------------------------------------------------------------------------- terms
@admin.register(TermsVersion)
class TermsVersionAdmin(StaffWriteMixin, admin.ModelAdmin):
    list_display = ["version", "published_at", "created_by", "acceptance_count"]
    fields = ["version", "published_at", "text", "created_by"]
    readonly_fields = ["created_by"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("created_by").annotate(_acceptances=Count("acceptances"))

    def get_readonly_fields(self, request, obj=None):
        return self.fields if obj is not None else self.readonly_fields  # a published version never changes

    def has_change_permission(self, request, obj=None) -> bool:
        return obj is None and is_policy_staff(request.user)

    @admin.display(description="accepted by", ordering="_acceptances")
    def acceptance_count(self, terms) -> int:
        return terms._acceptances

    def save_model(self, request, obj, form, change) -> None:
        created = partners.terms_publish(version=obj.version, text=obj.text, published_at=obj.published_at,
                                         actor=request.user, ip=client_ip(request))
        obj.pk = created.pk


@admin.register(TermsAcceptance)
class TermsAcceptanceAdmin(PolicyStaffViewMixin, admin.ModelAdmin):
    list_display = ["user", "terms", "accepted_at", "ip"]
    list_filter = ["terms"]
    list_select_related = ["user", "terms"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


# --------------------------------------------------------------------------- requests and grants
@admin.register(AccessRequest)
class AccessRequestAdmin(PolicyStaffViewMixin, admin.ModelAdmin):
    list_display = ["id", "partner", "model_size", "requested_by", "status", "created_at", "decided_by"]
    list_filter = ["status"]
    list_select_related = ["partner", "model_size", "requested_by", "decided_by"]
    fields = ["partner", "model_size", "requested_by", "purpose", "status", "created_at", "decided_by",
              "decided_at", "decision_reason", "grant"]
    readonly_fields = fields
    actions = ["grant_selected", "refuse_selected"]

    def has_add_permission(self, request) -> bool:
        return False  # members request in the portal

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description="Grant selected requests")
    def grant_selected(self, request, queryset):
        def grant(obj, data):
            grants.access_request_grant(
                request=obj, actor=request.user, expires_at=timezone.now() + timedelta(days=data["expires_in_days"]),
                quota_links=data["quota_links"], quota_period_s=data["quota_period_s"] if data["quota_links"] else None,
                reason=data["reason"], ip=client_ip(request))

        return _reason_page(self, request, queryset, action="grant_selected", title="Grant access",
                            form=_bound(request, GrantDecisionForm, "expires_in_days"), call=grant)

    @admin.action(description="Refuse selected requests (reason required)")
    def refuse_selected(self, request, queryset):
        return _reason_page(self, request, queryset, action="refuse_selected", title="Refuse access",
                            form=_bound(request, ReasonForm, "reason"),
                            call=lambda obj, data: grants.access_request_refuse(
                                request=obj, actor=request.user, reason=data["reason"], ip=client_ip(request)))


@admin.register(AccessGrant)
class AccessGrantAdmin(StaffWriteMixin, admin.ModelAdmin):
    list_display = ["id", "partner", "model_size", "state", "starts_at", "expires_at", "quota", "granted_by"]
    list_filter = ["model_size__stage", "partner"]
    list_select_related = ["partner", "model_size", "granted_by"]
    search_fields = ["partner__name", "model_size__slug", "purpose"]
    add_fields = ["partner", "model_size", "purpose", "starts_at", "expires_at", "quota_links", "quota_period_s"]
    fields = [*add_fields, "granted_by", "created_at", "revoked_at", "revoked_by", "revoke_reason", "member_access"]
    actions = ["revoke_selected"]

    def get_fields(self, request, obj=None):
        return self.add_fields if obj is None else self.fields

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.fields

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="state now")
    def state(self, grant) -> str:
        return access.grant_state(grant)

    @admin.display(description="quota")
    def quota(self, grant) -> str:
        return f"{grant.quota_links} per file / {grant.quota_period_s} s" if grant.has_quota else "—"

    @admin.display(description="what each member gets now")
    def member_access(self, grant) -> str:
        rows = []
        for member in grant.partner.members.select_related("user"):
            decision = access.may(member.user, grant.model_size, access.MANIFEST)
            rows.append((member.user.get_username(), "may download" if decision.allowed else decision.reason,
                         decision.detail))
        return format_html_join("", "<div><strong>{}</strong>: {} — {}</div>", rows) or "No members."

    def save_model(self, request, obj, form, change) -> None:
        # The form has validated the model's constraints (dates in order, quota complete); the service records it.
        created = grants.grant_create(
            partner=obj.partner, size=obj.model_size, purpose=obj.purpose, actor=request.user,
            starts_at=obj.starts_at, expires_at=obj.expires_at, quota_links=obj.quota_links,
            quota_period_s=obj.quota_period_s, ip=client_ip(request))
        obj.pk = created.pk

    @admin.action(description="Revoke selected grants (reason required): no new links from now on")
    def revoke_selected(self, request, queryset):
        return _reason_page(self, request, queryset, action="revoke_selected", title="Revoke grants",
                            form=_bound(request, ReasonForm, "reason"),
                            call=lambda grant, data: grants.grant_revoke(
                                grant=grant, actor=request.user, reason=data["reason"], ip=client_ip(request)))


@admin.register(IssuedLink)
class IssuedLinkAdmin(PolicyStaffViewMixin, admin.ModelAdmin):
    list_display = ["issued_at", "user", "partner", "model_size", "filename", "basis", "grant", "expires_at", "ip"]
    list_filter = ["basis", "model_size"]
    list_select_related = ["user", "partner", "model_size", "grant"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


# --------------------------------------------------------------------------- API tokens (replaces knox's admin)
class TokenCreateForm(forms.ModelForm):
    name = forms.CharField(max_length=100)
    expires_days = forms.IntegerField(min_value=1, max_value=partners.TOKEN_MAX_DAYS, initial=30)

    class Meta:
        model = AuthToken
        fields = ["user"]


admin.site.unregister(AuthToken)


@admin.register(AuthToken)
class TokenAdmin(admin.ModelAdmin):
    list_display = ["token_key", "user", "name", "created", "expiry"]
    list_select_related = ["user", "label"]
    search_fields = ["token_key", "user__username", "label__name"]
    fields = ["token_key", "user", "name", "created", "expiry"]
    readonly_fields = fields
    autocomplete_fields = ["user"]
    actions = ["revoke_selected"]

    def has_module_permission(self, request) -> bool:
        return request.user.is_active and request.user.is_staff

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.is_active and request.user.is_staff

    def has_add_permission(self, request) -> bool:
        return request.user.is_active and request.user.is_staff

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = TokenCreateForm
            kwargs["fields"] = ["user", "name", "expires_days"]
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        return ["user", "name", "expires_days"] if obj is None else self.fields

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.readonly_fields

    @admin.display(description="name")
    def name(self, token) -> str:
        label = getattr(token, "label", None)
        return label.name if label else "—"

    def save_model(self, request, obj, form, change) -> None:
        token, key = partners.token_create(user=form.cleaned_data["user"], name=form.cleaned_data["name"],
                                           expires_days=form.cleaned_data["expires_days"], actor=request.user,
                                           ip=client_ip(request))
        obj.pk = token.pk
        # Shown once: only a hash is stored.
        self.message_user(request, f"Token for {token.user}: {key} — copy it now, it will not be shown again.",
                          messages.WARNING)

    @admin.action(description="Revoke selected tokens")
    def revoke_selected(self, request, queryset):
        for token in queryset.select_related("user"):
            partners.token_revoke(token=token, actor=request.user, ip=client_ip(request))
        self.message_user(request, "Revoked.", messages.SUCCESS)
