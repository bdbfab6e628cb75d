"""Revisions and datasets as release subjects, and histories that answer "who could get what on date X": the
schema. The data follows in 0009, in its own transaction."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('registry', '0006_revisions_required'),
        ('releases', '0007_token_verified'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='PartnerActivity',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('active', models.BooleanField()),
                ('at', models.DateTimeField()),
            ],
            options={
                'ordering': ['partner', 'at', 'id'],
            },
        ),
        migrations.AlterModelOptions(
            name='datasetpublication',
            options={'verbose_name': 'dataset release'},
        ),
        migrations.AddField(
            model_name='issuedlink',
            name='revision',
            field=models.ForeignKey(blank=True, help_text='Empty only for links issued before revisions.', null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='registry.revision'),
        ),
        migrations.AddField(
            model_name='partnermember',
            name='left_at',
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name='stagechange',
            name='dataset',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='stage_changes', to='registry.outputdataset'),
        ),
        migrations.AddField(
            model_name='stagechange',
            name='revision',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='stage_changes', to='registry.revision'),
        ),
        migrations.AddField(
            model_name='stagechange',
            name='subject',
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.AddField(
            model_name='stagechangerequest',
            name='dataset',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='stage_requests', to='registry.outputdataset'),
        ),
        migrations.AddField(
            model_name='stagechangerequest',
            name='revision',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='stage_requests', to='registry.revision'),
        ),
        migrations.AddField(
            model_name='stagechangerequest',
            name='subject',
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.AddField(
            model_name='stagedecision',
            name='subject',
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.AlterField(
            model_name='partnermember',
            name='added_at',
            field=models.DateTimeField(default=django.utils.timezone.now),
        ),
        migrations.AlterField(
            model_name='partnermember',
            name='partner',
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='members', to='releases.partnerorganisation'),
        ),
        migrations.AlterField(
            model_name='partnermember',
            name='user',
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='partner_memberships', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AlterField(
            model_name='stagechange',
            name='model_size',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='stage_changes', to='registry.modelsize'),
        ),
        migrations.AlterField(
            model_name='stagechangerequest',
            name='model_size',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='stage_requests', to='registry.modelsize'),
        ),
        migrations.AddConstraint(
            model_name='partnermember',
            constraint=models.UniqueConstraint(condition=models.Q(('left_at__isnull', True)), fields=('user',), name='one_current_membership_per_user'),
        ),
        migrations.AddConstraint(
            model_name='stagechangerequest',
            constraint=models.CheckConstraint(condition=models.Q(('revision__isnull', True), ('dataset__isnull', True), _connector='OR'), name='stage_request_one_subject'),
        ),
        migrations.AddConstraint(
            model_name='stagechangerequest',
            constraint=models.CheckConstraint(condition=models.Q(('model_size__isnull', False), ('dataset__isnull', False), _connector='OR'), name='stage_request_has_a_subject'),
        ),
        migrations.AddField(
            model_name='partneractivity',
            name='partner',
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='activity', to='releases.partnerorganisation'),
        ),
    ]
