"""Who is who: the group that makes release decisions."""

from django.contrib.auth.models import AbstractBaseUser

POLICY_STAFF_GROUP = "policy-staff"


def is_policy_staff(user: AbstractBaseUser) -> bool:
    # Superusers get no bypass: release decisions need membership of the group.
    return bool(user and user.is_authenticated and user.groups.filter(name=POLICY_STAFF_GROUP).exists())
