"""Revisions, schema first: the data moves in 0005 and the constraints that need it land in 0006, each in its own
transaction (PostgreSQL will not build an index over rows with pending constraint checks)."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("registry", "0003_data_removal_request"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Revision",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("revision", models.CharField(editable=False, help_text="40 lowercase hex digits.", max_length=40)),
                ("number", models.PositiveIntegerField(editable=False,
                                                       help_text="1, 2, … within the size, for people.")),
                ("hparams", models.JSONField(editable=False)),
                ("note", models.TextField(blank=True, editable=False)),
                ("stage", models.CharField(choices=[("internal", "Internal"), ("partners", "Partners"),
                                                    ("public", "Public"), ("withdrawn", "Withdrawn")],
                                           default="internal", editable=False, max_length=16)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("model_size", models.ForeignKey(on_delete=django.db.models.deletion.PROTECT,
                                                 related_name="revisions", to="registry.modelsize")),
                ("parent", models.ForeignKey(blank=True, editable=False, null=True,
                                             on_delete=django.db.models.deletion.PROTECT, related_name="children",
                                             to="registry.revision")),
                ("training_run", models.ForeignKey(blank=True, editable=False, null=True,
                                                   on_delete=django.db.models.deletion.PROTECT,
                                                   related_name="revisions", to="registry.trainingrun")),
                ("uploaded_by", models.ForeignKey(blank=True, editable=False, null=True,
                                                  on_delete=django.db.models.deletion.PROTECT, related_name="+",
                                                  to=settings.AUTH_USER_MODEL)),
            ],
            options={"ordering": ["model_size", "-number"]},
        ),
        migrations.AddField(
            model_name="artifact", name="revision",
            field=models.ForeignKey(null=True, on_delete=django.db.models.deletion.PROTECT,
                                    related_name="artifacts", to="registry.revision"),
        ),
        migrations.RemoveConstraint(model_name="artifact", name="artifact_unique_filename_per_size"),
        migrations.AlterField(model_name="artifact", name="s3_key",
                              field=models.CharField(editable=False, max_length=512)),
        migrations.AddField(
            model_name="evalresult", name="revision",
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT,
                                    related_name="evals", to="registry.revision"),
        ),
        migrations.AddField(
            model_name="outputdataset", name="revision",
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT,
                                    related_name="output_datasets", to="registry.revision"),
        ),
        migrations.AddField(
            model_name="outputdataset", name="stage",
            field=models.CharField(choices=[("internal", "Internal"), ("partners", "Partners"), ("public", "Public"),
                                            ("withdrawn", "Withdrawn")], default="internal", editable=False,
                                   max_length=16),
        ),
    ]
