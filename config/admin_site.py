"""The admin: its site, which asks for a second factor when STAGEGATE_SECOND_FACTOR is on, and which apps'
admin modules it shows, named here rather than discovered.

Discovery would also import knox's admin, which lets anyone with its model permission create an API token
for any account and be shown its key: a way to act in someone else's name. Stagegate's own token admin
(releases/access/admin.py) only lists and revokes.
"""

from importlib import import_module

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.apps import SimpleAdminConfig

ADMIN_MODULES = (
    "django.contrib.auth.admin",
    "django_otp.plugins.otp_totp.admin",
    "axes.admin",
    "registry.admin",
    "releases.admin",
    "workers.admin",
)


class StagegateAdminSite(admin.AdminSite):
    """With the second factor on, every admin page needs a session verified by an authenticator code at the
    admin's login (django-otp): a password alone, such as a partner portal session, opens none of it."""

    site_header = "Stagegate administration"
    site_title = "Stagegate"

    @property
    def login_form(self):
        if not settings.STAGEGATE_SECOND_FACTOR:
            return None
        # Imported here: this module is loaded with the app registry, before auth's models may be imported.
        from django_otp.admin import OTPAdminAuthenticationForm

        return OTPAdminAuthenticationForm

    @property
    def login_template(self):
        return "otp/admin111/login.html" if settings.STAGEGATE_SECOND_FACTOR else None

    def has_permission(self, request) -> bool:
        if not super().has_permission(request):
            return False
        return not settings.STAGEGATE_SECOND_FACTOR or request.user.is_verified()


class StagegateAdminConfig(SimpleAdminConfig):
    default_site = "config.admin_site.StagegateAdminSite"

    def ready(self) -> None:
        super().ready()
        for module in ADMIN_MODULES:
            import_module(module)
