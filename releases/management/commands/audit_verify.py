"""Verify the audit trail: the chain, every signed checkpoint, the copies in S3 and, if given, a checkpoint saved
elsewhere. Names the first problem and exits non-zero."""

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from releases.audit.verify import audit_verify


class Command(BaseCommand):
    help = ("Verify the audit trail's chain, signed checkpoints and their S3 copies (and --checkpoint FILE); "
            "exits non-zero naming the first bad event or checkpoint.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--checkpoint", type=Path, metavar="FILE",
                            help="a checkpoint saved elsewhere (JSON from /api/v1/audit/checkpoints/)")
        parser.add_argument("--no-copies", action="store_true", help="do not compare the copies in S3")

    def handle(self, *args, checkpoint: Path | None = None, no_copies: bool = False, **options) -> None:
        saved = None
        if checkpoint is not None:
            try:
                saved = json.loads(checkpoint.read_text())
            except (OSError, ValueError) as exc:
                raise CommandError(f"{checkpoint}: not a readable checkpoint ({exc}).") from None
            if not isinstance(saved, dict):
                raise CommandError(f"{checkpoint}: a checkpoint is a JSON object.")
        report = audit_verify(copies=not no_copies, saved=saved)
        counted = (f"{report.events} event(s), {report.checkpoints} signed checkpoint(s), "
                   f"{report.copies} copy(ies) in S3")
        if not report.ok:
            raise CommandError(f"Audit trail broken: {report.problem}. Verified before it: {counted}.")
        extra = f"; the saved checkpoint #{saved['seq']} holds" if saved else ""
        self.stdout.write(self.style.SUCCESS(f"Audit trail intact: {counted}{extra}."))
