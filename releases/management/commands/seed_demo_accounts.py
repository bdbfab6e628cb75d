"""Create the demo's named accounts with the passwords `make demo` generated and prints."""

import json
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from releases.roles import OPERATORS_GROUP, POLICY_STAFF_GROUP, role_groups_ensure

# username -> (role shown to the user, is_staff, is_superuser, role group or None)
DEMO_ACCOUNTS = {
    "admin": ("superuser", True, True, None),
    "alice": ("policy staff", True, False, POLICY_STAFF_GROUP),
    "bob": ("policy staff", True, False, POLICY_STAFF_GROUP),
    "carol": ("policy staff", True, False, POLICY_STAFF_GROUP),
    "otto": ("operator", True, False, OPERATORS_GROUP),
    "pat": ("partner admin of Example Security Lab", False, False, None),
    "rita": ("researcher", False, False, None),
}


class Command(BaseCommand):
    help = "Create or update the demo accounts (admin, alice, bob, carol, otto, pat, rita) from a passwords file."

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
        groups = role_groups_ensure()
        User = get_user_model()
        for username, (_role, is_staff, is_superuser, group) in DEMO_ACCOUNTS.items():
            user, _ = User.objects.get_or_create(username=username, defaults={"email": f"{username}@example.org"})
            user.is_staff, user.is_superuser = is_staff, is_superuser
            user.set_password(passwords[username])
            user.save()
            if group is not None:
                user.groups.add(groups[group])
        self.stdout.write(self.style.SUCCESS(f"Demo accounts ready: {', '.join(DEMO_ACCOUNTS)}"))
