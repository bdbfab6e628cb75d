"""Policy staff set access questions, see partners' invitations and set members' roles in the admin;
they read user accounts (request pages link the people on them), never change them. tests/releases/test_roles.py
checks these lists still equal releases.roles.ROLE_PERMISSIONS."""

import importlib

from django.db import migrations

from releases.migrations._role_grants import roles_granter

_previous = importlib.import_module("releases.migrations.0019_roles_with_webhooks")

ROLES = {name: list(perms) for name, perms in _previous.ROLES.items()}
ROLES["policy-staff"] += ["releases.view_accessquestion", "releases.add_accessquestion",
                          "releases.change_accessquestion", "releases.view_partnerinvitation",
                          "releases.change_partnermember", "auth.view_user"]


class Migration(migrations.Migration):
    dependencies = [("releases", "0022_partner_admins_invitations_questions")]

    operations = [migrations.RunPython(roles_granter(ROLES), migrations.RunPython.noop)]
