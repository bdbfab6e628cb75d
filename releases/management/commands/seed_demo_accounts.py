"""Create the demo's named accounts with the passwords `make demo` generated and prints."""

import json
from pathlib import Path

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from releases.roles import POLICY_STAFF_GROUP

# username -> (role shown to the user, is_staff, is_superuser, in policy staff)
DEMO_ACCOUNTS = {
    "admin": ("superuser", True, True, False),
    "alice": ("policy staff", True, False, True),
    "bob": ("policy staff", True, False, True),
    "carol": ("policy staff", True, False, True),
    "pat": ("partner member", False, False, False),
    "rita": ("researcher", False, False, False),
}


class Command(BaseCommand):
    help = "Create or update the demo accounts (admin, alice, bob, carol, pat, rita) from a passwords file."

    def add_arguments(self, parser) -> None:
        parser.add_argument("passwords_file", help="JSON object mapping each demo username to its password")

    @transaction.atomic
    def handle(self, *args, passwords_file: str, **options) -> None:
        try:
            passwords = json.loads(Path(passwords_file).read_text())
        except (OSError, ValueError) as exc:
            raise CommandError(f"cannot read passwords from {passwords_file}: {exc}") from exc
        missing = sorted(set(DEMO_ACCOUNTS) - set(passwords))
        if missing:
            raise CommandError(f"{passwords_file} has no password for: {', '.join(missing)}")
        policy_staff, _ = Group.objects.get_or_create(name=POLICY_STAFF_GROUP)
        # Policy staff browse the registry in the admin; stage changes go through their own actions.
        policy_staff.permissions.add(
            *Permission.objects.filter(content_type__app_label__in=["registry", "releases", "workers"],
                                       codename__startswith="view_")
        )
        User = get_user_model()
        for username, (_role, is_staff, is_superuser, in_policy_staff) in DEMO_ACCOUNTS.items():
            user, _ = User.objects.get_or_create(username=username, defaults={"email": f"{username}@example.org"})
            user.is_staff, user.is_superuser = is_staff, is_superuser
            user.set_password(passwords[username])
            user.save()
            if in_policy_staff:
                user.groups.add(policy_staff)
        self.stdout.write(self.style.SUCCESS(f"Demo accounts ready: {', '.join(DEMO_ACCOUNTS)}"))
