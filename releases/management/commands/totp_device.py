"""Give a staff account an authenticator (TOTP) device and print its setup key once: the way into an admin that
asks for a second factor, for someone who has no device yet (an operator runs it on the server)."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django_otp.plugins.otp_totp.models import TOTPDevice


class Command(BaseCommand):
    help = "Create a TOTP device for USERNAME and print its otpauth:// URL (scan it into an authenticator app)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="authenticator", help="A label for the device.")

    def handle(self, *args, username: str, name: str, **options) -> None:
        user = get_user_model().objects.filter(username=username, is_active=True).first()
        if user is None:
            raise CommandError(f"no active user {username!r}")
        device = TOTPDevice.objects.create(user=user, name=name, confirmed=True)
        self.stdout.write(f"TOTP device {device.name!r} for {username}. Add it to an authenticator app (shown once):")
        self.stdout.write(device.config_url)
