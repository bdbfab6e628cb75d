"""Policy staff see and decide applications to become a partner. tests/releases/test_roles.py checks these
lists still equal releases.roles.ROLE_PERMISSIONS."""

import importlib

from django.db import migrations

from releases.migrations._role_grants import roles_granter

_previous = importlib.import_module("releases.migrations.0012_roles_with_checkpoints")

ROLES = {name: list(perms) for name, perms in _previous.ROLES.items()}
ROLES["policy-staff"].append("releases.view_partnerapplication")


class Migration(migrations.Migration):
    dependencies = [("releases", "0013_partner_applications")]

    operations = [migrations.RunPython(roles_granter(ROLES), migrations.RunPython.noop)]
