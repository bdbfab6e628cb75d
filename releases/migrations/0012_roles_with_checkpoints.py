"""Policy staff see the audit trail's signed checkpoints in the admin. tests/releases/test_roles.py checks these
lists still equal releases.roles.ROLE_PERMISSIONS."""

import importlib

from django.db import migrations

from releases.migrations._role_grants import roles_granter

_previous = importlib.import_module("releases.migrations.0010_roles_with_revisions")

ROLES = {name: list(perms) for name, perms in _previous.ROLES.items()}
ROLES["policy-staff"].append("releases.view_auditcheckpoint")


class Migration(migrations.Migration):
    dependencies = [("releases", "0011_audit_sealing")]

    operations = [migrations.RunPython(roles_granter(ROLES), migrations.RunPython.noop)]
