"""The admin: which apps' admin modules it shows, named here rather than discovered.

Discovery would also import knox's admin, which lets anyone with its model permission create an API token
for any account and be shown its key: a way to act in someone else's name. Stagegate's own token admin
(releases/access/admin.py) only lists and revokes.
"""

from importlib import import_module

from django.contrib.admin.apps import SimpleAdminConfig

ADMIN_MODULES = (
    "django.contrib.auth.admin",
    "django_otp.plugins.otp_totp.admin",
    "axes.admin",
    "registry.admin",
    "releases.admin",
    "workers.admin",
)


class StagegateAdminConfig(SimpleAdminConfig):
    def ready(self) -> None:
        super().ready()
        for module in ADMIN_MODULES:
            import_module(module)
