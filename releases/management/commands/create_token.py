"""Issue an API token (knox) for a user and print its key once; only its hash is stored."""

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from knox.models import AuthToken

from releases.audit import audit_record
from releases.models import TokenLabel


class Command(BaseCommand):
    help = "Create an API token for USERNAME and print the key (use it as `Authorization: Token <key>`)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="A label for the token, e.g. 'alice laptop'.")
        parser.add_argument("--expires-days", type=int, default=30,
                            help="Lifetime in days (default 30; 0 for a token that never expires).")

    @transaction.atomic
    def handle(self, *args, username: str, name: str, expires_days: int, **options) -> None:
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user {username!r}.")
        if expires_days < 0:
            raise CommandError("--expires-days must be 0 or more.")
        expiry = timedelta(days=expires_days) if expires_days else None
        token, key = AuthToken.objects.create(user=user, expiry=expiry)
        label = name or f"{username} (manage.py create_token)"
        TokenLabel.objects.create(token=token, name=label)
        audit_record(actor=None, action="token.created", target=user,
                     data={"token_key": token.token_key, "name": label,
                           "expiry": token.expiry.isoformat() if token.expiry else None})
        self.stdout.write(key)
