"""Shared by the role migrations from 0014 on (the loader skips modules whose names start with "_")."""

from django.contrib.auth.management import create_permissions


def roles_granter(roles: dict[str, list[str]]):
    """A RunPython function that gives each group exactly `roles[group]`, creating permissions first."""

    def grant_roles(apps, schema_editor):
        for app_config in apps.get_app_configs():
            app_config.models_module = True
            create_permissions(app_config, verbosity=0, apps=apps)
            app_config.models_module = None
        Group = apps.get_model("auth", "Group")
        Permission = apps.get_model("auth", "Permission")
        for name, perms in roles.items():
            group, _ = Group.objects.get_or_create(name=name)
            group.permissions.set([Permission.objects.get(content_type__app_label=perm.split(".", 1)[0],
                                                          codename=perm.split(".", 1)[1]) for perm in perms])

    return grant_roles
