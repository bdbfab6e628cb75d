"""A dataset's release is its stage now; releases' migration 0009 recorded each publication as history first."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("registry", "0006_revisions_required"),
        ("releases", "0009_revision_subjects"),
    ]

    operations = [
        migrations.RemoveField(model_name="outputdataset", name="published_at"),
    ]
