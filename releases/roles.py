"""Who may do what: roles are Django permissions, granted to groups by data migrations (the latest sets them).

`is_staff` only lets someone into the admin; it grants nothing else. A superuser holds only what was granted to
them too (`can` has no superuser bypass): release decisions and access to unreleased sizes need a role, so one
technical account cannot decide alone what the two-person rule leaves to policy staff.
"""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group, Permission
from django.db.models import Q, QuerySet
from rest_framework.permissions import BasePermission

from config.errors import DomainError

POLICY_STAFF_GROUP = "policy-staff"
OPERATORS_GROUP = "operators"

# Permissions, as "app_label.codename".
REQUEST_STAGE_CHANGE = "releases.add_stagechangerequest"
DECIDE_STAGE_CHANGE = "releases.decide_stagechangerequest"
REVIEW_STAGE = "releases.review_stagechange"
SEE_UNRELEASED = "releases.see_unreleased"  # see and download every size and dataset at every stage
MANAGE_PARTNERS = "releases.change_partnerorganisation"  # create, (de)activate, members
PUBLISH_TERMS = "releases.add_termsversion"
GRANT_ACCESS = "releases.add_accessgrant"  # grant, and decide access requests
REVOKE_ACCESS = "releases.revoke_accessgrant"
REVOKE_TOKENS = "knox.delete_authtoken"  # anyone's; everyone may revoke their own
MANAGE_WEBHOOKS = "releases.change_webhooksubscription"  # also: send an outbox message again
SUBMIT_JOB = "workers.add_job"
CANCEL_JOB = "workers.cancel_job"

_REGISTRY_VIEW = [f"registry.view_{model}" for model in (
    "modelfamily", "modelsize", "revision", "artifact", "modelcard", "trainingrun", "evalresult", "outputdataset",
    "datasetsplit", "detectionresult", "dataremovalrequest")]

# What each group holds: least privilege. The data migration grants exactly these (a test compares them).
ROLE_PERMISSIONS: dict[str, list[str]] = {
    POLICY_STAFF_GROUP: sorted([
        *_REGISTRY_VIEW, "registry.change_modelcard", "registry.change_dataremovalrequest",
        SEE_UNRELEASED,
        "releases.view_stagechangerequest", REQUEST_STAGE_CHANGE, DECIDE_STAGE_CHANGE, "releases.view_stagedecision",
        "releases.view_stagechange", REVIEW_STAGE, "releases.view_stagereview", "releases.view_sizerelease",
        "releases.view_datasetpublication", "releases.view_auditevent", "releases.view_auditcheckpoint",
        "releases.view_partnerorganisation", "releases.add_partnerorganisation", MANAGE_PARTNERS,
        "releases.view_partnermember", "releases.add_partnermember", "releases.delete_partnermember",
        "releases.view_termsversion", PUBLISH_TERMS, "releases.view_termsacceptance",
        "releases.view_accessrequest", "releases.view_accessgrant", GRANT_ACCESS, REVOKE_ACCESS,
        "releases.view_partnerapplication", "releases.view_stagerequestcomment",
        "releases.view_accessquestion", "releases.add_accessquestion", "releases.change_accessquestion",
        "releases.view_partnerinvitation", "releases.change_partnermember", "auth.view_user",
        "releases.view_webhooksubscription", "releases.add_webhooksubscription",
        MANAGE_WEBHOOKS,
        "releases.view_issuedlink", "releases.view_outboxmessage", "knox.view_authtoken", REVOKE_TOKENS,
        "workers.view_job", SUBMIT_JOB, CANCEL_JOB,
    ]),
    OPERATORS_GROUP: sorted([
        *_REGISTRY_VIEW, "registry.add_modelfamily", "registry.change_modelfamily", "registry.add_modelsize",
        "registry.change_modelsize", "registry.add_evalresult", "registry.change_evalresult",
        SEE_UNRELEASED,
        "workers.view_job", SUBMIT_JOB, CANCEL_JOB,
    ]),
}


# Holding any of these makes someone govern: they may have governance tokens (releases/access/tokens.py).
GOVERNANCE_PERMISSIONS = (REQUEST_STAGE_CHANGE, DECIDE_STAGE_CHANGE, REVIEW_STAGE, SEE_UNRELEASED, MANAGE_PARTNERS,
                          GRANT_ACCESS, SUBMIT_JOB)


class NotPermitted(DomainError):
    """The caller's role does not include the permission an action needs."""

    code = "not_permitted"
    http_status = 403


class NotPolicyStaff(NotPermitted):
    code = "not_policy_staff"


def granted_permissions(user: AbstractBaseUser) -> frozenset[str]:
    """The permissions granted to `user` directly or through groups, as "app_label.codename" (cached on the
    user object for the request, as Django caches its own)."""
    if not (user is not None and user.is_authenticated and user.is_active):
        return frozenset()
    if not hasattr(user, "_stagegate_perm_cache"):
        rows = Permission.objects.filter(Q(group__user=user) | Q(user=user)).values_list(
            "content_type__app_label", "codename")
        user._stagegate_perm_cache = frozenset(f"{app}.{codename}" for app, codename in rows)
    return user._stagegate_perm_cache


def can(user: AbstractBaseUser | None, perm: str) -> bool:
    """Whether `user` holds `perm` through a group or a direct grant. Superusers are not special here."""
    return perm in granted_permissions(user)


def require(user: AbstractBaseUser | None, perm: str, *, to: str, role: str = POLICY_STAFF_GROUP) -> None:
    """Raise a 403 saying who may `to` (do this) unless `user` holds `perm`."""
    if not can(user, perm):
        error = NotPolicyStaff if role == POLICY_STAFF_GROUP else NotPermitted
        raise error(f"Only members of the {role} group may {to}; superusers get no bypass.")


def holders(perm: str) -> QuerySet:
    """Active users who hold `perm` (for notices to those who decide)."""
    app_label, codename = perm.split(".", 1)
    match = Q(content_type__app_label=app_label, codename=codename)
    granted = Permission.objects.filter(match)
    return get_user_model().objects.filter(
        Q(groups__permissions__in=granted) | Q(user_permissions__in=granted), is_active=True).distinct()


class _RolePermission(BasePermission):
    perm = ""
    to = ""
    role = POLICY_STAFF_GROUP

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False  # DRF answers 401
        require(request.user, self.perm, to=self.to, role=self.role)  # 403 naming who may
        return True


def role_permission(perm: str, *, to: str, role: str = POLICY_STAFF_GROUP) -> type[BasePermission]:
    """A DRF permission class: anonymous callers get 401, callers without `perm` 403 saying who may `to`."""
    return type(f"Requires_{perm.replace('.', '_')}", (_RolePermission,), {"perm": perm, "to": to, "role": role})


def role_groups_ensure() -> dict[str, Group]:
    """Create the role groups if missing and give each exactly its permissions (as the roles migration does);
    for databases emptied after migrating (transactional tests) and for re-seeding the demo."""
    groups = {}
    for name, perms in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=name)
        wanted = Q()
        for perm in perms:
            app_label, codename = perm.split(".", 1)
            wanted |= Q(content_type__app_label=app_label, codename=codename)
        found = list(Permission.objects.filter(wanted))
        if len(found) != len(perms):
            missing = set(perms) - {f"{p.content_type.app_label}.{p.codename}" for p in found}
            raise RuntimeError(f"permissions missing for {name}: {sorted(missing)}")
        group.permissions.set(found)
        groups[name] = group
    return groups


def governs(user) -> bool:
    """Whether `user` takes part in governing releases (policy staff, operators): see GOVERNANCE_PERMISSIONS."""
    return bool(granted_permissions(user) & set(GOVERNANCE_PERMISSIONS))
