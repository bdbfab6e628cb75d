"""The audit trail sealed by a sealer, with signed checkpoints: events are appended without a chain position
(`seq`, `prev_hash`, `hash` stay empty until sealed); existing events keep theirs."""

from django.db import migrations, models

# Events are appended unsealed and sealed once; checkpoints are published once. The triggers let exactly that
# through: an UPDATE that fills the seal (or publication) columns from empty and changes nothing else. Every
# other UPDATE, and every DELETE, is refused, as before (0002).
_MESSAGE = "{table} is append-only: rows cannot be changed or deleted, only sealed once"
_EVENT_SEAL = ("seq", "prev_hash", "hash")
_EVENT_REST = ("id", "at", "actor_id", "actor_label", "action", "target_type", "target_id", "target_label", "before",
               "after", "reason", "ip", "data")
_CHECKPOINT_SEAL = ("published_at",)
_CHECKPOINT_REST = ("id", "seq", "head", "sealed_at", "key_id", "signature")
_TABLES = {"releases_auditevent": (_EVENT_SEAL, _EVENT_REST),
           "releases_auditcheckpoint": (_CHECKPOINT_SEAL, _CHECKPOINT_REST)}


def _postgresql(table: str, seal: tuple, _rest: tuple) -> list[str]:
    filled = " AND ".join([f"OLD.{c} IS NULL AND NEW.{c} IS NOT NULL" for c in seal])
    minus = "".join(f" - '{c}'" for c in seal)
    return [
        f"""
        CREATE OR REPLACE FUNCTION {table}_append_only() RETURNS trigger AS $$
        BEGIN
            IF TG_OP = 'UPDATE' AND {filled} AND (to_jsonb(NEW){minus}) = (to_jsonb(OLD){minus}) THEN
                RETURN NEW;
            END IF;
            RAISE EXCEPTION '{_MESSAGE.format(table=table)}' USING ERRCODE = 'insufficient_privilege';
        END;
        $$ LANGUAGE plpgsql;
        """,
        f"DROP TRIGGER IF EXISTS {table}_append_only ON {table};",
        f"""
        CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}
        FOR EACH ROW EXECUTE FUNCTION {table}_append_only();
        """,
    ]


def _sqlite(table: str, seal: tuple, rest: tuple) -> list[str]:
    # Altering the table above rebuilt it on SQLite, dropping 0002's triggers with the old table.
    allowed = " AND ".join([f"OLD.{c} IS NULL AND NEW.{c} IS NOT NULL" for c in seal]
                           + [f"NEW.{c} IS OLD.{c}" for c in rest])
    message = _MESSAGE.format(table=table)
    return [
        f"DROP TRIGGER IF EXISTS {table}_no_update;",
        f"DROP TRIGGER IF EXISTS {table}_no_delete;",
        f"""CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} WHEN NOT ({allowed})
        BEGIN SELECT RAISE(ABORT, '{message}'); END;""",
        f"""CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table}
        BEGIN SELECT RAISE(ABORT, '{message}'); END;""",
    ]


def install_triggers(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    build = {"postgresql": _postgresql, "sqlite": _sqlite}.get(vendor)
    if build is None:
        raise RuntimeError(f"No append-only audit triggers for the {vendor} database; add them here.")
    for table, (seal, rest) in _TABLES.items():
        for statement in build(table, seal, rest):
            schema_editor.execute(statement)


class Migration(migrations.Migration):

    dependencies = [
        ('releases', '0010_roles_with_revisions'),
    ]

    operations = [
        migrations.CreateModel(
            name='AuditCheckpoint',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('seq', models.PositiveBigIntegerField(editable=False, help_text='Events sealed so far.', unique=True)),
                ('head', models.CharField(editable=False, help_text='The hash of event `seq`.', max_length=64)),
                ('sealed_at', models.CharField(editable=False, help_text='ISO 8601 UTC, exactly as signed (e.g. 2026-12-04T11:50:00.123456Z).', max_length=32)),
                ('key_id', models.CharField(editable=False, max_length=64)),
                ('signature', models.CharField(editable=False, help_text='Base64 of the Ed25519 signature.', max_length=128)),
                ('published_at', models.DateTimeField(blank=True, editable=False, null=True)),
            ],
            options={
                'ordering': ['-seq'],
            },
        ),
        migrations.AlterModelOptions(
            name='auditevent',
            options={'ordering': ['id']},
        ),
        migrations.RemoveIndex(
            model_name='auditevent',
            name='releases_au_target__e81846_idx',
        ),
        migrations.AlterField(
            model_name='auditevent',
            name='hash',
            field=models.CharField(blank=True, editable=False, max_length=64, null=True, unique=True),
        ),
        migrations.AlterField(
            model_name='auditevent',
            name='prev_hash',
            field=models.CharField(blank=True, editable=False, max_length=64, null=True, unique=True),
        ),
        migrations.AlterField(
            model_name='auditevent',
            name='seq',
            field=models.PositiveBigIntegerField(blank=True, editable=False, help_text='Its place in the chain, from 1; empty until sealed.', null=True, unique=True),
        ),
        migrations.AddIndex(
            model_name='auditevent',
            index=models.Index(fields=['target_type', 'target_id', 'id'], name='audit_target'),
        ),
        migrations.AddIndex(
            model_name='auditevent',
            index=models.Index(condition=models.Q(('seq__isnull', True)), fields=['id'], name='audit_unsealed'),
        ),
        migrations.AddConstraint(
            model_name='auditevent',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('hash__isnull', True), ('prev_hash__isnull', True), ('seq__isnull', True)), models.Q(('hash__isnull', False), ('prev_hash__isnull', False), ('seq__isnull', False)), _connector='OR'), name='audit_sealed_whole'),
        ),
        migrations.AddConstraint(
            model_name='auditcheckpoint',
            constraint=models.CheckConstraint(condition=models.Q(('seq__gte', 1)), name='audit_checkpoint_seq_positive'),
        ),
        migrations.RunPython(install_triggers, migrations.RunPython.noop),
    ]
