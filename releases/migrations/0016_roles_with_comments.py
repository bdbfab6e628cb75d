"""Policy staff read the discussion of stage-change requests. tests/releases/test_roles.py checks these lists
still equal releases.roles.ROLE_PERMISSIONS."""

import importlib

from django.db import migrations

from releases.migrations._role_grants import roles_granter

_previous = importlib.import_module("releases.migrations.0014_roles_with_partner_applications")

ROLES = {name: list(perms) for name, perms in _previous.ROLES.items()}
ROLES["policy-staff"].append("releases.view_stagerequestcomment")


class Migration(migrations.Migration):
    dependencies = [("releases", "0015_stage_request_comments")]

    operations = [migrations.RunPython(roles_granter(ROLES), migrations.RunPython.noop)]
