# 0005 as it landed had no `sizes`: a database that applied it gets the column here.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('workers', '0005_study'),
    ]

    operations = [
        migrations.AddField(
            model_name='study',
            name='sizes',
            field=models.JSONField(blank=True, default=list, editable=False),
        ),
    ]
