"""The audit trail: appended without a chain position, sealed once by the sealer under a signed checkpoint, and
append-only in the database except for that one seal."""

import importlib
import sqlite3

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction

from releases.audit import signing
from releases.audit.chain import AuditTarget, audit_record, event_hash
from releases.audit.sealer import audit_seal
from releases.audit.verify import AuditReport, audit_verify
from releases.models import AuditCheckpoint, AuditEvent

TARGET = AuditTarget(type="registry.modelsize", id="1", label="GPT-2 124M")


def _events(alice, count: int = 3) -> list[AuditEvent]:
    return [audit_record(actor=alice, action="test.event", target=TARGET, before=i, after=i + 1,
                         reason=f"event {i}", ip="192.0.2.1", data={"i": i}) for i in range(count)]


def test_an_event_is_appended_unsealed_and_the_sealer_chains_it_under_a_signed_checkpoint(alice):
    first, second, third = _events(alice)
    assert (first.seq, first.prev_hash, first.hash) == (None, None, None)  # no chain work in the request
    checkpoint = audit_seal()
    first, second, third = (AuditEvent.objects.get(pk=e.pk) for e in (first, second, third))
    assert (first.seq, second.seq, third.seq) == (1, 2, 3)
    assert second.prev_hash == first.hash and third.prev_hash == second.hash
    assert (checkpoint.seq, checkpoint.head) == (3, third.hash)
    document = {"seq": 3, "head": third.hash, "sealed_at": checkpoint.sealed_at, "key_id": checkpoint.key_id,
                "signature": checkpoint.signature}
    assert signing.signature_valid(document, signing.public_key().key)
    assert audit_seal() is None  # nothing new: no empty checkpoint
    assert audit_verify(copies=False) == AuditReport(events=3, checkpoints=1, copies=0, problem=None)


def test_each_seal_appends_to_the_chain_with_its_own_checkpoint(alice):
    _events(alice, 2)
    audit_seal()
    _events(alice, 3)
    audit_seal()
    assert list(AuditCheckpoint.objects.order_by("seq").values_list("seq", flat=True)) == [2, 5]
    assert audit_verify(copies=False).ok


def test_the_database_rejects_updates_to_an_events_contents(alice):
    event = _events(alice, 1)[0]
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(reason="nothing happened")
    audit_seal()
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE releases_auditevent SET actor_label = 'mallory'")
    with pytest.raises(DatabaseError), transaction.atomic():  # sealed once: never sealed again
        AuditEvent.objects.filter(pk=event.pk).update(seq=7, prev_hash="1" * 64, hash="2" * 64)


def test_the_database_rejects_a_seal_that_also_changes_the_contents(alice):
    event = _events(alice, 1)[0]
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(seq=1, prev_hash="0" * 64, hash="1" * 64, reason="other")
    with pytest.raises(DatabaseError), transaction.atomic():  # half a seal
        AuditEvent.objects.filter(pk=event.pk).update(seq=1)


def test_the_database_rejects_deletes_of_events_and_checkpoints(alice):
    _events(alice, 1)
    audit_seal()
    for table in ("releases_auditevent", "releases_auditcheckpoint"):
        with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {table}")
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditCheckpoint.objects.update(head="f" * 64)
    assert (AuditEvent.objects.count(), AuditCheckpoint.objects.count()) == (1, 1)


def _as_table_owner(*statements: tuple[str, list]) -> None:
    """Bypass the triggers, as the database's administrator can."""
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE releases_auditevent DISABLE TRIGGER USER")
        cursor.execute("ALTER TABLE releases_auditcheckpoint DISABLE TRIGGER USER")
        for sql, params in statements:
            cursor.execute(sql, params)
        cursor.execute("ALTER TABLE releases_auditevent ENABLE TRIGGER USER")
        cursor.execute("ALTER TABLE releases_auditcheckpoint ENABLE TRIGGER USER")


def test_verify_names_an_edited_event(alice):
    events = _events(alice, 5)
    audit_seal()
    _as_table_owner(("UPDATE releases_auditevent SET reason = 'nothing to see' WHERE id = %s", [events[2].pk]))
    with pytest.raises(CommandError, match=r"event #3 .*contents do not match its hash"):
        call_command("audit_verify", "--no-copies")


def test_verify_names_a_deleted_event(alice):
    events = _events(alice, 5)
    audit_seal()
    _as_table_owner(("DELETE FROM releases_auditevent WHERE id = %s", [events[1].pk]))
    with pytest.raises(CommandError, match=r"event #2 is missing"):
        call_command("audit_verify", "--no-copies")


def _rewrite_history(events: list[AuditEvent], index: int, reason: str) -> None:
    """Edit one event and recompute every hash from it on, consistently: the chain alone then verifies."""
    changed = []
    prev = None
    for position, event in enumerate(AuditEvent.objects.filter(seq__isnull=False).order_by("seq")):
        if position == index:
            event.reason = reason
        if position >= index:
            event.prev_hash = prev if prev is not None else event.prev_hash
            event.hash = event_hash(event)
            changed.append(event)
        prev = event.hash
    _as_table_owner(*[("UPDATE releases_auditevent SET reason = %s, prev_hash = %s, hash = %s WHERE id = %s",
                       [e.reason, e.prev_hash, e.hash, e.pk]) for e in changed])


def test_a_rewritten_and_consistently_rechained_history_fails_by_its_signed_checkpoints(alice):
    events = _events(alice, 6)
    audit_seal()
    _rewrite_history(events, 2, "nothing to see")
    from releases.audit.verify import _chain

    assert _chain(set(), 100)[2] is None  # the chain alone is consistent again
    with pytest.raises(CommandError, match=r"checkpoint #6: its head is not the hash of event #6: an event in "
                                           r"#1–#6 was changed"):
        call_command("audit_verify", "--no-copies")


def test_re_signing_without_the_key_fails_and_removing_checkpoints_leaves_events_uncovered(alice):
    events = _events(alice, 4)
    audit_seal()
    _events(alice, 2)
    audit_seal()
    _rewrite_history(events, 5, "forged")
    bogus = AuditEvent.objects.get(seq=6).hash
    _as_table_owner(("UPDATE releases_auditcheckpoint SET head = %s WHERE seq = 6", [bogus]))
    assert "checkpoint #6: its signature is not valid" in audit_verify(copies=False).problem
    _as_table_owner(("DELETE FROM releases_auditcheckpoint WHERE seq = 6", []))
    assert audit_verify(copies=False).problem == \
        "events #5–#6 are sealed but no signed checkpoint covers them"


def test_verify_reports_an_intact_trail(alice, capsys):
    _events(alice, 4)
    call_command("audit_verify", "--no-copies")
    assert "Audit trail intact: 4 event(s), 1 signed checkpoint(s)" in capsys.readouterr().out


def test_a_saved_checkpoint_is_checked_against_the_chain(alice, tmp_path, capsys):
    import json

    from releases.audit.sealer import checkpoint_document

    events = _events(alice, 3)
    saved = tmp_path / "checkpoint.json"
    saved.write_text(json.dumps(checkpoint_document(audit_seal())))
    call_command("audit_verify", "--no-copies", "--checkpoint", str(saved))
    assert "the saved checkpoint #3 holds" in capsys.readouterr().out
    _rewrite_history(events, 0, "forged")
    _as_table_owner(("DELETE FROM releases_auditcheckpoint", []))
    # With no checkpoint left, the sealer signs the chain as it stands: only the saved copy knows better.
    with pytest.raises(CommandError, match=r"the saved checkpoint #3: the chain's event #3 no longer has that hash"):
        call_command("audit_verify", "--no-copies", "--checkpoint", str(saved))
    document = json.loads(saved.read_text())
    document["head"] = AuditEvent.objects.get(seq=3).hash
    saved.write_text(json.dumps(document))
    with pytest.raises(CommandError, match=r"the saved checkpoint #3: its signature is not valid"):
        call_command("audit_verify", "--no-copies", "--checkpoint", str(saved))


def test_a_bad_checkpoint_file_is_a_clear_error(tmp_path):
    path = tmp_path / "x.json"
    path.write_text("not json")
    with pytest.raises(CommandError, match="not a readable checkpoint"):
        call_command("audit_verify", "--checkpoint", str(path))


def test_the_sqlite_triggers_let_only_the_seal_through():
    """The demo runs on SQLite: the migration's SQLite triggers, applied to a scratch database."""
    migration = importlib.import_module("releases.migrations.0011_audit_sealing")
    db = sqlite3.connect(":memory:")
    columns = ", ".join(f"{c} TEXT" for c in (*migration._EVENT_SEAL, *migration._EVENT_REST) if c != "id")
    db.execute(f"CREATE TABLE releases_auditevent (id INTEGER PRIMARY KEY, {columns})")
    db.execute("CREATE TABLE releases_auditcheckpoint (id INTEGER PRIMARY KEY, seq INTEGER, head TEXT, "
               "sealed_at TEXT, key_id TEXT, signature TEXT, published_at TEXT)")
    for table, (seal, rest) in migration._TABLES.items():
        for statement in migration._sqlite(table, seal, rest):
            db.execute(statement)
    db.execute("INSERT INTO releases_auditevent (reason, data) VALUES ('kept', '{}')")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("UPDATE releases_auditevent SET reason = 'changed'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("UPDATE releases_auditevent SET seq = 1, prev_hash = 'a', hash = 'b', reason = 'changed'")
    db.execute("UPDATE releases_auditevent SET seq = 1, prev_hash = 'a', hash = 'b'")  # the seal
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("UPDATE releases_auditevent SET seq = 2, prev_hash = 'c', hash = 'd'")  # only once
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("DELETE FROM releases_auditevent")
    db.execute("INSERT INTO releases_auditcheckpoint (seq, head) VALUES (1, 'b')")
    db.execute("UPDATE releases_auditcheckpoint SET published_at = 'now'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("UPDATE releases_auditcheckpoint SET head = 'x'")
    assert db.execute("SELECT reason, seq FROM releases_auditevent").fetchall() == [("kept", "1")]
