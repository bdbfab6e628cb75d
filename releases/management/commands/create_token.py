"""Issue an API token (knox) for a user and print its key once; only its hash is stored."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from config.errors import DomainError
from releases.access.models import TokenLabel
from releases.access.tokens import TOKEN_MAX_DAYS, token_create


class Command(BaseCommand):
    help = "Create an API token for USERNAME and print the key (use it as `Authorization: Token <key>`)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="A label for the token, e.g. 'alice laptop'.")
        parser.add_argument("--expires-days", type=int, default=30,
                            help="Lifetime in days (default 30; 0 for a token that never expires).")
        parser.add_argument("--scope", choices=TokenLabel.Scope.values, default=TokenLabel.Scope.DOWNLOAD,
                            help="download (default: downloads, catalogue, own grants) or governance (staff: "
                                 "every call the user may make).")
        parser.add_argument("--size", action="append", dest="sizes", default=[],
                            help="Limit a download token to this size (repeat for several).")

    def handle(self, *args, username: str, name: str, expires_days: int, scope: str, sizes: list[str],
               **options) -> None:
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user {username!r}.")
        if not 0 <= expires_days <= TOKEN_MAX_DAYS:
            raise CommandError(f"--expires-days must be 0 to {TOKEN_MAX_DAYS}.")
        try:
            _token, key = token_create(user=user, name=name or f"{username} (manage.py create_token)",
                                       expires_days=expires_days, actor=None, scope=scope, sizes=sizes)
        except DomainError as error:
            raise CommandError(error.message) from error
        self.stdout.write(key)
