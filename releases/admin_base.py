"""What the release app's admins share: permissions from roles, and actions that ask for a reason first.

Every governance admin asks `releases.roles.can` for Django's own permission names (`releases.view_accessgrant`,
`releases.add_termsversion`, …), which the roles' groups hold (releases/roles.py). `can` has no superuser bypass,
so who sees and does what here is exactly what the groups grant; records are never edited or deleted in a
form unless a group holds that permission (none does: changes go through the audited services).
"""

from django.contrib import admin, messages
from django.http import HttpRequest
from django.template.response import TemplateResponse

from config.errors import DomainError
from releases.roles import can


def _perm(model, action: str) -> str:
    return f"{model._meta.app_label}.{action}_{model._meta.model_name}"


class GovernancePermissions:
    """has_*_permission from the roles' grants of Django's model permissions."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return can(request.user, _perm(self.model, "view"))

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return can(request.user, _perm(self.model, "add"))

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return can(request.user, _perm(self.model, "change"))

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return can(request.user, _perm(self.model, "delete"))


class GovernanceAdmin(GovernancePermissions, admin.ModelAdmin):
    pass


class GovernanceInline(GovernancePermissions, admin.TabularInline):
    extra = 0


def reason_action(admin_obj, request, queryset, *, action: str, title: str, form, call) -> TemplateResponse | None:
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
