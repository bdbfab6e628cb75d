"""Policy staff register webhook receivers in the admin. tests/releases/test_roles.py checks these lists still
equal releases.roles.ROLE_PERMISSIONS."""

import importlib

from django.db import migrations

from releases.migrations._role_grants import roles_granter

_previous = importlib.import_module("releases.migrations.0016_roles_with_comments")

ROLES = {name: list(perms) for name, perms in _previous.ROLES.items()}
ROLES["policy-staff"] += ["releases.view_webhooksubscription", "releases.add_webhooksubscription",
                          "releases.change_webhooksubscription"]


class Migration(migrations.Migration):
    dependencies = [("releases", "0018_webhook_subscriptions")]

    operations = [migrations.RunPython(roles_granter(ROLES), migrations.RunPython.noop)]
