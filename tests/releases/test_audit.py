"""The audit trail is append-only in the database and its hash chain shows tampering."""

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction

from releases.audit.chain import AuditTarget, audit_record, audit_verify
from releases.models import AuditEvent

TARGET = AuditTarget(type="registry.modelsize", id="1", label="GPT-2 124M")


def _events(alice, count: int = 3) -> list[AuditEvent]:
    return [audit_record(actor=alice, action="test.event", target=TARGET, before=i, after=i + 1,
                         reason=f"event {i}", ip="192.0.2.1", data={"i": i}) for i in range(count)]


def test_each_row_is_chained_to_the_previous_one(alice):
    first, second, third = _events(alice)
    assert (first.seq, second.seq, third.seq) == (1, 2, 3)
    assert second.prev_hash == first.hash and third.prev_hash == second.hash
    assert audit_verify() == (3, None)


def test_the_database_rejects_updates(alice):
    event = _events(alice, 1)[0]
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(reason="nothing happened")
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE releases_auditevent SET actor_label = 'mallory'")


def test_the_database_rejects_deletes(alice):
    event = _events(alice, 1)[0]
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).delete()
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM releases_auditevent")
    assert AuditEvent.objects.count() == 1


def _tamper(sql: str, params: list) -> None:
    """Bypass the trigger, as someone with table-owner rights could."""
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE releases_auditevent DISABLE TRIGGER releases_auditevent_append_only")
        cursor.execute(sql, params)
        cursor.execute("ALTER TABLE releases_auditevent ENABLE TRIGGER releases_auditevent_append_only")


def test_audit_verify_names_the_first_edited_row(alice):
    events = _events(alice, 5)
    _tamper("UPDATE releases_auditevent SET reason = 'nothing to see' WHERE id = %s", [events[2].pk])
    with pytest.raises(CommandError, match=r"broken at event #3 .*contents do not match"):
        call_command("audit_verify")


def test_audit_verify_names_the_row_after_a_deleted_one(alice):
    events = _events(alice, 5)
    _tamper("DELETE FROM releases_auditevent WHERE id = %s", [events[1].pk])
    with pytest.raises(CommandError, match=r"broken at event #3 .*sequence gap"):
        call_command("audit_verify")


def test_audit_verify_reports_an_intact_chain(alice, capsys):
    _events(alice, 4)
    call_command("audit_verify")
    assert "4 event(s) verified" in capsys.readouterr().out


def test_the_sqlite_triggers_reject_updates_and_deletes_too():
    """The demo runs on SQLite: the migration's SQLite triggers, applied to a scratch database."""
    import importlib
    import sqlite3

    migration = importlib.import_module("releases.migrations.0002_audit_append_only")
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE releases_auditevent (id INTEGER PRIMARY KEY, reason TEXT)")
    for statement in migration._SQLITE_FORWARD:
        db.execute(statement)
    db.execute("INSERT INTO releases_auditevent (reason) VALUES ('kept')")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("UPDATE releases_auditevent SET reason = 'changed'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("DELETE FROM releases_auditevent")
    assert db.execute("SELECT reason FROM releases_auditevent").fetchall() == [("kept",)]
