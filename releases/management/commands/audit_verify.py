"""Check the audit trail's hash chain end to end and name the first broken row."""

from django.core.management.base import BaseCommand, CommandError

from releases.audit.chain import audit_verify


class Command(BaseCommand):
    help = "Verify the audit trail's hash chain; exits non-zero naming the first broken row."

    def handle(self, *args, **options) -> None:
        checked, broken = audit_verify()
        if broken is not None:
            raise CommandError(
                f"Audit chain broken at event #{broken.seq} (id {broken.event_id}): {broken.problem}. "
                f"{checked} event(s) before it verified."
            )
        self.stdout.write(self.style.SUCCESS(f"Audit chain intact: {checked} event(s) verified."))
