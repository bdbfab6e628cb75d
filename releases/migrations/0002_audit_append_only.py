"""Make the audit table append-only in the database itself: UPDATE and DELETE are rejected by triggers.

The application never updates or deletes audit rows; these triggers make sure nothing else
(a shell, a migration, a bug) can either.
"""

from django.db import migrations

_MESSAGE = "releases_auditevent is append-only: audit events cannot be changed or deleted"

_POSTGRESQL_FORWARD = [
    f"""
    CREATE OR REPLACE FUNCTION releases_auditevent_append_only() RETURNS trigger AS $$
    BEGIN
        RAISE EXCEPTION '{_MESSAGE}' USING ERRCODE = 'insufficient_privilege';
    END;
    $$ LANGUAGE plpgsql;
    """,
    """
    CREATE TRIGGER releases_auditevent_append_only
    BEFORE UPDATE OR DELETE ON releases_auditevent
    FOR EACH ROW EXECUTE FUNCTION releases_auditevent_append_only();
    """,
]
_POSTGRESQL_REVERSE = [
    "DROP TRIGGER IF EXISTS releases_auditevent_append_only ON releases_auditevent;",
    "DROP FUNCTION IF EXISTS releases_auditevent_append_only();",
]

_SQLITE_FORWARD = [
    f"""
    CREATE TRIGGER releases_auditevent_no_update BEFORE UPDATE ON releases_auditevent
    BEGIN SELECT RAISE(ABORT, '{_MESSAGE}'); END;
    """,
    f"""
    CREATE TRIGGER releases_auditevent_no_delete BEFORE DELETE ON releases_auditevent
    BEGIN SELECT RAISE(ABORT, '{_MESSAGE}'); END;
    """,
]
_SQLITE_REVERSE = [
    "DROP TRIGGER IF EXISTS releases_auditevent_no_update;",
    "DROP TRIGGER IF EXISTS releases_auditevent_no_delete;",
]

_BY_VENDOR = {
    "postgresql": (_POSTGRESQL_FORWARD, _POSTGRESQL_REVERSE),
    "sqlite": (_SQLITE_FORWARD, _SQLITE_REVERSE),
}


def _run(apps, schema_editor, *, forward: bool) -> None:
    vendor = schema_editor.connection.vendor
    if vendor not in _BY_VENDOR:
        raise RuntimeError(f"No append-only audit triggers for the {vendor} database; add them here.")
    for statement in _BY_VENDOR[vendor][0 if forward else 1]:
        schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("releases", "0001_governance")]

    operations = [
        migrations.RunPython(
            lambda apps, schema_editor: _run(apps, schema_editor, forward=True),
            lambda apps, schema_editor: _run(apps, schema_editor, forward=False),
        ),
    ]
