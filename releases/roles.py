"""Who is who: the group that makes release decisions."""

from django.contrib.auth.models import AbstractBaseUser

POLICY_STAFF_GROUP = "policy-staff"


def is_policy_staff(user: AbstractBaseUser) -> bool:
    """Whether the user is in the policy-staff group; asked once per user object, as Django caches
    permissions (`_perm_cache`): a request's user sees the groups it had when the request began."""
    # Superusers get no bypass: release decisions need membership of the group.
    if not (user and user.is_authenticated):
        return False
    if not hasattr(user, "_policy_staff_cache"):
        user._policy_staff_cache = user.groups.filter(name=POLICY_STAFF_GROUP).exists()
    return user._policy_staff_cache
