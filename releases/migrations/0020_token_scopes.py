"""Token scopes. Tokens made before scopes keep doing what they did: they become governance tokens (which
authenticate as their owner for every call, as before); new tokens are download tokens unless asked otherwise."""

from django.db import migrations, models

_CHOICES = [("download", "download (manifests, links, datasets, Hub clients, your grants and requests)"),
            ("governance", "governance (also release decisions and jobs: staff only)")]


class Migration(migrations.Migration):

    dependencies = [
        ('releases', '0019_roles_with_webhooks'),
    ]

    operations = [
        migrations.AddField(
            model_name="tokenlabel", name="scope",
            field=models.CharField(choices=_CHOICES, default="governance", max_length=16),
        ),
        migrations.AlterField(
            model_name="tokenlabel", name="scope",
            field=models.CharField(choices=_CHOICES, default="download", max_length=16),
        ),
        migrations.AddField(
            model_name='tokenlabel',
            name='sizes',
            field=models.JSONField(blank=True, default=list),
        ),
    ]
