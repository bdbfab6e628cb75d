"""The roles after revisions: both see revisions; datasets are released by stage requests like revisions, so
the separate permission to publish them is gone. tests/releases/test_roles.py checks these lists still equal
releases.roles.ROLE_PERMISSIONS."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

REGISTRY_VIEW = [f"registry.view_{model}" for model in (
    "modelfamily", "modelsize", "revision", "artifact", "modelcard", "trainingrun", "evalresult", "outputdataset",
    "datasetsplit", "detectionresult", "dataremovalrequest")]

ROLES = {
    "policy-staff": [
        *REGISTRY_VIEW, "registry.change_modelcard", "registry.change_dataremovalrequest",
        "releases.see_unreleased",
        "releases.view_stagechangerequest", "releases.add_stagechangerequest", "releases.decide_stagechangerequest",
        "releases.view_stagedecision", "releases.view_stagechange", "releases.review_stagechange",
        "releases.view_stagereview", "releases.view_sizerelease", "releases.view_datasetpublication",
        "releases.view_auditevent",
        "releases.view_partnerorganisation", "releases.add_partnerorganisation", "releases.change_partnerorganisation",
        "releases.view_partnermember", "releases.add_partnermember", "releases.delete_partnermember",
        "releases.view_termsversion", "releases.add_termsversion", "releases.view_termsacceptance",
        "releases.view_accessrequest", "releases.view_accessgrant", "releases.add_accessgrant",
        "releases.revoke_accessgrant", "releases.view_issuedlink", "releases.view_outboxmessage",
        "knox.view_authtoken", "knox.delete_authtoken",
        "workers.view_job", "workers.add_job", "workers.cancel_job",
    ],
    "operators": [
        *REGISTRY_VIEW, "registry.add_modelfamily", "registry.change_modelfamily", "registry.add_modelsize",
        "registry.change_modelsize", "registry.add_evalresult", "registry.change_evalresult",
        "releases.see_unreleased",
        "workers.view_job", "workers.add_job", "workers.cancel_job",
    ],
}


def grant_roles(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0, apps=apps)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    Permission.objects.filter(content_type__app_label="releases", codename="publish_datasetpublication").delete()
    for name, perms in ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        found = []
        for perm in perms:
            app_label, codename = perm.split(".", 1)
            found.append(Permission.objects.get(content_type__app_label=app_label, codename=codename))
        group.permissions.set(found)


class Migration(migrations.Migration):
    dependencies = [
        ("registry", "0007_remove_outputdataset_published_at"),
        ("releases", "0009_revision_subjects"),
    ]

    operations = [migrations.RunPython(grant_roles, migrations.RunPython.noop)]
