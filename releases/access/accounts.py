"""Accounts and role groups as the audit trail sees them: what decides a user's access (role groups, direct
permissions, the active/staff/superuser flags) and what a group grants. Django's admin saves users and groups
itself (releases/access/admin.py); these functions record, in the same transaction, what each save changed.
"""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from releases.audit.chain import audit_record


def _permission_names(permissions) -> list[str]:
    return sorted(f"{app}.{codename}" for app, codename in permissions.values_list("content_type__app_label",
                                                                                  "codename"))


def account_roles(user) -> dict:
    """What decides what `user` may see and do: `can` reads the groups and direct permissions, `may` the flags."""
    return {
        "groups": sorted(user.groups.values_list("name", flat=True)),
        "permissions": _permission_names(user.user_permissions),
        "is_active": user.is_active, "is_staff": user.is_staff, "is_superuser": user.is_superuser,
    }


def group_grants(group: Group) -> dict:
    return {"name": group.name, "permissions": _permission_names(group.permissions)}


def _moved(before: dict, after: dict) -> tuple[dict, dict]:
    keys = [key for key in after if before.get(key) != after[key]]
    return {key: before.get(key) for key in keys}, {key: after[key] for key in keys}


def account_change_record(*, user, before: dict | None, actor, ip: str | None = None) -> None:
    """Audit a saved account: `user.created` with its roles, or `user.roles_changed` with the entries that moved
    (`before` is account_roles from before the save); nothing when none did, as for a name or password edit."""
    after = account_roles(user)
    if before is None:
        audit_record(actor=actor, action="user.created", target=user, after=after, ip=ip)
        return
    was, now = _moved(before, after)
    if now:
        audit_record(actor=actor, action="user.roles_changed", target=user, before=was, after=now, ip=ip)


def account_delete_record(*, user, actor, ip: str | None = None) -> None:
    """Audit an account about to be deleted (called before the delete, in its transaction)."""
    audit_record(actor=actor, action="user.deleted", target=user, before=account_roles(user), ip=ip)


def group_change_record(*, group: Group, before: dict | None, actor, ip: str | None = None) -> None:
    """Audit a saved role group: what it grants changes what every member may do."""
    after = group_grants(group)
    if before is None:
        audit_record(actor=actor, action="role_group.created", target=group, after=after, ip=ip)
        return
    was, now = _moved(before, after)
    if now:
        audit_record(actor=actor, action="role_group.changed", target=group, before=was, after=now, ip=ip,
                     data={"members": group.user_set.count()})


def group_delete_record(*, group: Group, actor, ip: str | None = None) -> None:
    audit_record(actor=actor, action="role_group.deleted", target=group, before=group_grants(group), ip=ip,
                 data={"members": sorted(group.user_set.values_list(get_user_model().USERNAME_FIELD, flat=True))})
