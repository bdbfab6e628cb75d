"""Write a new Ed25519 key for signing audit checkpoints (never overwriting one)."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from releases.audit.signing import key_file_write


class Command(BaseCommand):
    help = "Write a new audit signing key to PATH (owner-only); set STAGEGATE_AUDIT_KEY_FILE to it."

    def add_arguments(self, parser) -> None:
        parser.add_argument("path", type=Path)

    def handle(self, *args, path: Path, **options) -> None:
        try:
            key_id = key_file_write(path)
        except FileExistsError:
            raise CommandError(f"{path} exists; a signing key is never overwritten.") from None
        self.stdout.write(f"Wrote {path} (key id {key_id}). Set STAGEGATE_AUDIT_KEY_FILE={path}.")
