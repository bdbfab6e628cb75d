"""Every file belongs to a revision now that 0005 gave each size its first one."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("registry", "0005_first_revisions")]

    operations = [
        migrations.AlterField(
            model_name="artifact", name="revision",
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name="artifacts",
                                    to="registry.revision"),
        ),
        migrations.AddConstraint(
            model_name="artifact",
            constraint=models.UniqueConstraint(fields=("revision", "filename"),
                                               name="artifact_unique_filename_per_revision"),
        ),
        migrations.AddConstraint(
            model_name="revision",
            constraint=models.UniqueConstraint(fields=("model_size", "revision"), name="revision_id_unique_per_size"),
        ),
        migrations.AddConstraint(
            model_name="revision",
            constraint=models.UniqueConstraint(fields=("model_size", "number"),
                                               name="revision_number_unique_per_size"),
        ),
    ]
