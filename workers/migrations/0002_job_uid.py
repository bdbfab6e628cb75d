import uuid

from django.db import migrations, models


def give_each_job_a_uid(apps, schema_editor):
    Job = apps.get_model("workers", "Job")
    for job in Job.objects.filter(uid__isnull=True).only("pk"):
        Job.objects.filter(pk=job.pk).update(uid=uuid.uuid4())


class Migration(migrations.Migration):
    dependencies = [("workers", "0001_initial")]

    operations = [
        migrations.AddField(model_name="job", name="uid", field=models.UUIDField(null=True, editable=False)),
        migrations.RunPython(give_each_job_a_uid, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="job", name="uid", field=models.UUIDField(default=uuid.uuid4, editable=False, unique=True)
        ),
    ]
