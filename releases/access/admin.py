"""Admin for partners, members, terms, access requests, grants (grant/refuse/revoke with a reason), issued
links, API tokens (revoked here, never created for someone else), and accounts and role groups. Every write goes
through the audited services (partners.py, grants.py, tokens.py) or is audited with what it changed
(accounts.py); the grant page shows what `may` answers each member now."""

from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group
from django.db import transaction
from django.db.models import Count, Q
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html_join
from knox.models import AuthToken

from config.client_ip import client_ip
from registry.admin import ReadOnlyMixin
from releases.access import accounts, applications, grants, partners, questions, renewals, tokens
from releases.access import rules as access
from releases.access.errors import InvalidPartnerAction
from releases.admin_base import GovernanceAdmin, GovernanceInline, reason_action
from releases.models import (
    AccessGrant,
    AccessQuestion,
    AccessRequest,
    IssuedLink,
    PartnerApplication,
    PartnerInvitation,
    PartnerMember,
    PartnerOrganisation,
    TermsAcceptance,
    TermsVersion,
)
from releases.roles import MANAGE_PARTNERS, REVOKE_TOKENS, can


class ReasonForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), help_text="Recorded and shown to the partner.")


class ExtendForm(forms.Form):
    expires_at = forms.DateTimeField(label="New end (UTC)", help_text="Later than now and than the current end.",
                                     widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
                                     input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d"])
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), help_text="Recorded and shown to the partner.")


class OptionalReasonForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False,
                             help_text="Recorded with the decision and shown to the applicant.")
    confirm = forms.BooleanField(label="I have read the application and accept it.")


class GrantDecisionForm(forms.Form):
    expires_in_days = forms.IntegerField(min_value=1, max_value=3650, initial=180)
    quota_links = forms.IntegerField(min_value=1, required=False, help_text="Links per file per period; empty: none.")
    quota_period_s = forms.IntegerField(min_value=1, required=False, initial=86400)
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)


def _bound(request, form_class, field: str):
    return form_class(request.POST if field in request.POST else None)


# --------------------------------------------------------------------------- organisations and members
class PartnerMemberForm(forms.ModelForm):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:  # a membership is someone's: end it and add another, never re-point it
            self.fields["user"].disabled = True


class PartnerMemberInline(GovernanceInline):
    """Current members and their roles; a removed member's membership is ended (kept, with its dates), not
    deleted."""

    model = PartnerMember
    form = PartnerMemberForm
    extra = 1
    fields = ["user", "role", "added_at"]
    readonly_fields = ["added_at"]
    autocomplete_fields = ["user"]

    def get_queryset(self, request):
        return super().get_queryset(request).current()


@admin.register(PartnerOrganisation)
class PartnerOrganisationAdmin(GovernanceAdmin):
    list_display = ["name", "kind", "active", "member_count", "contact_email"]
    list_filter = ["kind", "active"]
    search_fields = ["name", "contact_email"]
    fields = ["name", "kind", "contact_name", "contact_email", "active", "created_at"]
    readonly_fields = ["active", "created_at"]
    inlines = [PartnerMemberInline]
    actions = ["deactivate_selected", "activate_selected"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_members=Count("members", filter=Q(members__left_at__isnull=True)))

    @admin.display(description="members", ordering="_members")
    def member_count(self, partner) -> int:
        return partner._members

    def save_model(self, request, obj, form, change) -> None:
        if change:
            partners.partner_update(partner=obj, actor=request.user, ip=client_ip(request),
                                    changed=form.changed_data)
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
            partners.partner_member_add(partner=form.instance, user=member.user, role=member.role,
                                        actor=request.user, ip=client_ip(request))
        for member, changed in formset.changed_objects:
            if "role" in changed:
                partners.partner_member_set_role(member=member, role=member.role, actor=request.user,
                                                 ip=client_ip(request))

    @admin.action(description="Deactivate selected partners (reason required): no new links for their members")
    def deactivate_selected(self, request, queryset):
        return reason_action(self, request, queryset, action="deactivate_selected", title="Deactivate partners",
                            form=_bound(request, ReasonForm, "reason"),
                            call=lambda p, data: partners.partner_set_active(
                                partner=p, active=False, actor=request.user, reason=data["reason"],
                                ip=client_ip(request)))

    @admin.action(description="Reactivate selected partners (reason required)")
    def activate_selected(self, request, queryset):
        return reason_action(self, request, queryset, action="activate_selected", title="Reactivate partners",
                            form=_bound(request, ReasonForm, "reason"),
                            call=lambda p, data: partners.partner_set_active(
                                partner=p, active=True, actor=request.user, reason=data["reason"],
                                ip=client_ip(request)))


# --------------------------------------------------------------------------- terms
@admin.register(TermsVersion)
class TermsVersionAdmin(GovernanceAdmin):
    list_display = ["version", "published_at", "created_by", "acceptance_count"]
    fields = ["version", "published_at", "text", "created_by"]
    readonly_fields = ["created_by"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("created_by").annotate(_acceptances=Count("acceptances"))

    def get_readonly_fields(self, request, obj=None):
        return self.fields if obj is not None else self.readonly_fields  # a published version never changes

    @admin.display(description="accepted by", ordering="_acceptances")
    def acceptance_count(self, terms) -> int:
        return terms._acceptances

    def save_model(self, request, obj, form, change) -> None:
        if change:  # a published version never changes (every field is read-only); publish a new one
            return
        created = partners.terms_publish(version=obj.version, text=obj.text, published_at=obj.published_at,
                                         actor=request.user, ip=client_ip(request))
        obj.pk = created.pk


@admin.register(TermsAcceptance)
class TermsAcceptanceAdmin(GovernanceAdmin):
    list_display = ["user", "terms", "accepted_at", "ip"]
    list_filter = ["terms"]
    list_select_related = ["user", "terms"]


# --------------------------------------------------------------------------- requests and grants
@admin.register(AccessRequest)
class AccessRequestAdmin(GovernanceAdmin):
    list_display = ["id", "partner", "model_size", "requested_by", "status", "created_at", "decided_by"]
    list_filter = ["status"]
    list_select_related = ["partner", "model_size", "requested_by", "decided_by"]
    fields = ["partner", "model_size", "requested_by", "purpose", "answers_given", "status", "created_at",
              "decided_by", "decided_at", "decision_reason", "grant", "partner_grants"]
    readonly_fields = fields
    actions = ["grant_selected", "refuse_selected"]
    change_form_template = "admin/releases/accessrequest/change_form.html"

    def change_view(self, request, object_id, form_url="", extra_context=None):
        buttons = [("grant_selected", "Grant…"), ("refuse_selected", "Refuse…")]
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), "decision_buttons": buttons})

    @admin.display(description="answers to the access questions")
    def answers_given(self, obj: AccessRequest) -> str:
        if not obj.answers:
            return "No questions were asked."
        return format_html_join("", "<div><strong>{}</strong><br>{}</div>", (
            (answer["prompt"], "agreed" if answer["answer"] is True else answer["answer"] or "(not answered)")
            for answer in obj.answers))

    @admin.display(description="the organisation's grants")
    def partner_grants(self, obj: AccessRequest) -> str:
        held = obj.partner.grants.select_related("model_size").order_by("-created_at")
        if not held:
            return "None."
        return format_html_join("", '<div><a href="{}">#{}</a> {}: {}, until {}</div>', (
            (reverse("admin:releases_accessgrant_change", args=[grant.pk]), grant.pk, grant.model_size.slug,
             access.grant_state(grant), grant.expires_at.strftime("%Y-%m-%d")) for grant in held))

    @admin.action(description="Grant selected requests")
    def grant_selected(self, request, queryset):
        def grant(obj, data):
            grants.access_request_grant(
                request=obj, actor=request.user, expires_at=timezone.now() + timedelta(days=data["expires_in_days"]),
                quota_links=data["quota_links"], quota_period_s=data["quota_period_s"] if data["quota_links"] else None,
                reason=data["reason"], ip=client_ip(request))

        return reason_action(self, request, queryset, action="grant_selected", title="Grant access",
                            form=_bound(request, GrantDecisionForm, "expires_in_days"), call=grant)

    @admin.action(description="Refuse selected requests (reason required)")
    def refuse_selected(self, request, queryset):
        return reason_action(self, request, queryset, action="refuse_selected", title="Refuse access",
                            form=_bound(request, ReasonForm, "reason"),
                            call=lambda obj, data: grants.access_request_refuse(
                                request=obj, actor=request.user, reason=data["reason"], ip=client_ip(request)))


@admin.register(PartnerApplication)
class PartnerApplicationAdmin(GovernanceAdmin):
    """Applications to become a partner, accepted or refused like access requests (with a reason)."""

    list_display = ["id", "organisation", "kind", "applicant", "status", "created_at", "decided_by"]
    list_filter = ["status", "kind"]
    list_select_related = ["applicant", "decided_by"]
    search_fields = ["organisation", "contact_email", "applicant__username"]
    fields = ["organisation", "kind", "applicant", "contact_name", "contact_email", "intended_use", "terms",
              "status", "created_at", "decided_by", "decided_at", "decision_reason", "partner"]
    readonly_fields = fields
    actions = ["accept_selected", "refuse_selected"]
    change_form_template = "admin/releases/partnerapplication/change_form.html"

    def change_view(self, request, object_id, form_url="", extra_context=None):
        buttons = [("accept_selected", "Accept…"), ("refuse_selected", "Refuse…")]
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), "decision_buttons": buttons})

    def has_decide_permission(self, request) -> bool:
        return can(request.user, MANAGE_PARTNERS)

    @admin.action(description="Accept selected applications", permissions=["decide"])
    def accept_selected(self, request, queryset):
        return reason_action(self, request, queryset, action="accept_selected", title="Accept applications",
                             form=_bound(request, OptionalReasonForm, "reason"),
                             call=lambda obj, data: applications.partner_application_accept(
                                 application=obj, actor=request.user, reason=data["reason"], ip=client_ip(request)))

    @admin.action(description="Refuse selected applications (reason required)", permissions=["decide"])
    def refuse_selected(self, request, queryset):
        return reason_action(self, request, queryset, action="refuse_selected", title="Refuse applications",
                             form=_bound(request, ReasonForm, "reason"),
                             call=lambda obj, data: applications.partner_application_refuse(
                                 application=obj, actor=request.user, reason=data["reason"], ip=client_ip(request)))


class ChoicesField(forms.CharField):
    """A question's options, one per line (stored as a list)."""

    widget = forms.Textarea(attrs={"rows": 4})

    def prepare_value(self, value):
        return "\n".join(value) if isinstance(value, list) else value

    def to_python(self, value):
        return [line.strip() for line in (value or "").splitlines() if line.strip()]


class AccessQuestionForm(forms.ModelForm):
    choices = ChoicesField(required=False, help_text="For a choice: the options, one per line.")

    class Meta:
        model = AccessQuestion
        fields = ["family", "model_size", "kind", "prompt", "choices", "required", "position", "active"]

    def _post_clean(self):
        super()._post_clean()  # the instance now holds the form's values
        try:
            questions.question_checked(self.instance)
        except InvalidPartnerAction as problem:
            self.add_error(None, problem.message)


@admin.register(AccessQuestion)
class AccessQuestionAdmin(GovernanceAdmin):
    """What partners answer when they request a size; retired by unticking `active`, never deleted."""

    form = AccessQuestionForm
    list_display = ["prompt", "family", "model_size", "kind", "required", "position", "active"]
    list_filter = ["active", "kind", "family"]
    list_select_related = ["family", "model_size"]
    search_fields = ["prompt"]

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj, form, change) -> None:
        questions.question_save(question=obj, actor=request.user, ip=client_ip(request))


@admin.register(PartnerInvitation)
class PartnerInvitationAdmin(ReadOnlyMixin, GovernanceAdmin):
    """Invitations partner admins sent (read-only here: partner admins send and cancel them in the portal)."""

    list_display = ["id", "partner", "email", "role", "invited_by", "created_at", "expires_at", "state",
                    "accepted_by"]
    list_filter = ["role", "partner"]
    list_select_related = ["partner", "invited_by", "accepted_by"]
    search_fields = ["email", "partner__name"]
    fields = ["partner", "email", "role", "invited_by", "created_at", "expires_at", "state", "accepted_by",
              "accepted_at", "cancelled_at"]
    readonly_fields = fields

    @admin.display(description="state")
    def state(self, invitation: PartnerInvitation) -> str:
        return invitation.state()


@admin.register(AccessGrant)
class AccessGrantAdmin(GovernanceAdmin):
    list_display = ["id", "partner", "model_size", "state", "starts_at", "expires_at", "quota", "granted_by"]
    list_filter = ["model_size__stage", "partner"]
    list_select_related = ["partner", "model_size", "granted_by"]
    search_fields = ["partner__name", "model_size__slug", "purpose"]
    add_fields = ["partner", "model_size", "purpose", "starts_at", "expires_at", "quota_links", "quota_period_s"]
    fields = [*add_fields, "granted_by", "created_at", "revoked_at", "revoked_by", "revoke_reason", "member_access"]
    actions = ["revoke_selected", "extend_selected"]

    HELP = {
        "partner": "The organisation whose current members may download.",
        "model_size": "The size: the grant opens its revisions at the partners stage (public ones need none).",
        "purpose": "What the organisation may use the size for; its members see it in the portal.",
        "starts_at": "UTC. Links are issued from this moment on.",
        "expires_at": "UTC. No links after this moment; a renewal is a new grant.",
        "quota_links": "Links per file within each quota period. Empty: no quota.",
        "quota_period_s": "The quota's window in seconds (86400 is a day). Only with a number of links.",
    }

    def get_fields(self, request, obj=None):
        return self.add_fields if obj is None else self.fields

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.fields

    def get_form(self, request, obj=None, **kwargs):
        return super().get_form(request, obj, help_texts={**self.HELP, **kwargs.pop("help_texts", {})}, **kwargs)

    @admin.action(description="Extend selected grants (new end and reason required)")
    def extend_selected(self, request, queryset):
        return reason_action(self, request, queryset, action="extend_selected", title="Extend grants",
                             form=_bound(request, ExtendForm, "reason"),
                             call=lambda obj, data: renewals.grant_extend(
                                 grant=obj, actor=request.user, expires_at=data["expires_at"], reason=data["reason"],
                                 ip=client_ip(request)))

    @admin.display(description="state now")
    def state(self, grant) -> str:
        return access.grant_state(grant)

    @admin.display(description="quota")
    def quota(self, grant) -> str:
        return f"{grant.quota_links} per file / {grant.quota_period_s} s" if grant.has_quota else "—"

    @admin.display(description="what each member gets now")
    def member_access(self, grant) -> str:
        rows = []
        for member in grant.partner.members.current().select_related("user"):
            decision = access.may(member.user, grant.model_size, access.MANIFEST)
            rows.append((member.user.get_username(), "may download" if decision.allowed else decision.reason,
                         decision.detail))
        return format_html_join("", "<div><strong>{}</strong>: {} — {}</div>", rows) or "No members."

    def save_model(self, request, obj, form, change) -> None:
        if change:  # a grant never changes once given (every field is read-only): it is revoked instead
            return
        # The form has validated the model's constraints (dates in order, quota complete); the service records it.
        created = grants.grant_create(
            partner=obj.partner, size=obj.model_size, purpose=obj.purpose, actor=request.user,
            starts_at=obj.starts_at, expires_at=obj.expires_at, quota_links=obj.quota_links,
            quota_period_s=obj.quota_period_s, ip=client_ip(request))
        obj.pk = created.pk

    @admin.action(description="Revoke selected grants (reason required): no new links from now on")
    def revoke_selected(self, request, queryset):
        return reason_action(self, request, queryset, action="revoke_selected", title="Revoke grants",
                            form=_bound(request, ReasonForm, "reason"),
                            call=lambda grant, data: grants.grant_revoke(
                                grant=grant, actor=request.user, reason=data["reason"], ip=client_ip(request)))


@admin.register(IssuedLink)
class IssuedLinkAdmin(GovernanceAdmin):
    list_display = ["issued_at", "user", "partner", "model_size", "filename", "basis", "grant", "expires_at", "ip"]
    list_filter = ["basis", "model_size"]
    list_select_related = ["user", "partner", "model_size", "grant"]


# --------------------------------------------------------------------------- API tokens
@admin.register(AuthToken)
class TokenAdmin(GovernanceAdmin):
    """Tokens are listed by their public prefix and revoked here; never created for someone else, never shown:
    a token is created only by its owner (portal, API) or by an operator's `manage.py create_token`."""

    list_display = ["token_key", "user", "name", "created", "expiry"]
    list_select_related = ["user", "label"]
    search_fields = ["token_key", "user__username", "label__name"]
    fields = ["token_key", "user", "name", "created", "expiry"]
    readonly_fields = fields
    actions = ["revoke_selected"]

    def has_revoke_permission(self, request) -> bool:
        return can(request.user, REVOKE_TOKENS)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # revoking (below) is the audited way to delete a token

    @admin.display(description="name")
    def name(self, token) -> str:
        label = getattr(token, "label", None)
        return label.name if label else "—"

    @admin.action(description="Revoke selected tokens", permissions=["revoke"])
    def revoke_selected(self, request, queryset):
        for token in queryset.select_related("user"):
            tokens.token_revoke(token=token, actor=request.user, ip=client_ip(request))
        self.message_user(request, "Revoked.", messages.SUCCESS)


# --------------------------------------------------------------------------- accounts and role groups
# Django's own user and group admins (superusers only; policy staff may read accounts), with every change to
# what decides someone's access audited: a superuser who put themself in policy-staff would otherwise leave no
# trace, and the role is what lets one approve releases and see unreleased sizes.
User = get_user_model()
admin.site.unregister(User)
admin.site.unregister(Group)


@admin.register(User)
class AccountAdmin(UserAdmin):
    def save_model(self, request, obj, form, change) -> None:
        # Read before the save; the groups and permissions themselves are saved later, in save_related.
        form.roles_before = accounts.account_roles(User.objects.get(pk=obj.pk)) if change else None
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change) -> None:
        super().save_related(request, form, formsets, change)
        accounts.account_change_record(user=form.instance, before=form.roles_before, actor=request.user,
                                       ip=client_ip(request))

    def delete_model(self, request, obj) -> None:
        accounts.account_delete_record(user=obj, actor=request.user, ip=client_ip(request))
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset) -> None:
        with transaction.atomic():
            for user in queryset:
                accounts.account_delete_record(user=user, actor=request.user, ip=client_ip(request))
            super().delete_queryset(request, queryset)


@admin.register(Group)
class RoleGroupAdmin(GroupAdmin):
    def save_model(self, request, obj, form, change) -> None:
        form.grants_before = accounts.group_grants(Group.objects.get(pk=obj.pk)) if change else None
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change) -> None:
        super().save_related(request, form, formsets, change)
        accounts.group_change_record(group=form.instance, before=form.grants_before, actor=request.user,
                                     ip=client_ip(request))

    def delete_model(self, request, obj) -> None:
        accounts.group_delete_record(group=obj, actor=request.user, ip=client_ip(request))
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset) -> None:
        with transaction.atomic():
            for group in queryset:
                accounts.group_delete_record(group=group, actor=request.user, ip=client_ip(request))
            super().delete_queryset(request, queryset)
