"""Policy staff see the audit trail's signed checkpoints in the admin. tests/releases/test_roles.py checks these
lists still equal releases.roles.ROLE_PERMISSIONS."""

import importlib

from django.contrib.auth.management import create_permissions
from django.db import migrations

_previous = importlib.import_module("releases.migrations.0010_roles_with_revisions")

ROLES = {name: list(perms) for name, perms in _previous.ROLES.items()}
ROLES["policy-staff"].append("releases.view_auditcheckpoint")


def grant_roles(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0, apps=apps)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, perms in ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.set([Permission.objects.get(content_type__app_label=perm.split(".", 1)[0],
                                                      codename=perm.split(".", 1)[1]) for perm in perms])


class Migration(migrations.Migration):
    dependencies = [("releases", "0011_audit_sealing")]

    operations = [migrations.RunPython(grant_roles, migrations.RunPython.noop)]
