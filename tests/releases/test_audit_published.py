"""The audit trail against its own database's administrator, with the real S3 copies: checkpoints are verified
with nothing but the public key and `cryptography`, a rewritten history fails by the copies, no event committed
late is ever skipped or sealed twice, and staff get proofs of single events."""

import base64
import hashlib
import importlib
import json
import threading

import pytest
import requests
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from django.core.management import CommandError, call_command
from django.db import connection, transaction

from registry import storage
from releases.audit.chain import AuditTarget, audit_record, event_hash
from releases.audit.sealer import CHECKPOINT_PREFIX, audit_seal
from releases.audit.verify import audit_verify
from releases.models import AuditCheckpoint, AuditEvent, OutboxMessage
from tests.releases.conftest import token_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

TARGET = AuditTarget(type="registry.modelsize", id="1", label="GPT-2 124M")


def _append(alice, count: int) -> list[AuditEvent]:
    return [audit_record(actor=alice, action="test.event", target=TARGET, reason=f"event {i}", data={"i": i})
            for i in range(count)]


def _independently_valid(checkpoint: dict, public_key_pem: str) -> bool:
    """What anyone holding a checkpoint does: the public key, `cryptography`, and the documented bytes."""
    key = load_pem_public_key(public_key_pem.encode())
    signed = json.dumps({k: checkpoint[k] for k in ("head", "key_id", "sealed_at", "seq")}, sort_keys=True,
                        separators=(",", ":")).encode("utf-8")
    try:
        key.verify(base64.b64decode(checkpoint["signature"]), signed)
    except InvalidSignature:
        return False
    return True


def test_every_published_checkpoint_verifies_with_only_the_public_key(api, s3, alice):
    _append(alice, 3)
    audit_seal()
    _append(alice, 2)
    audit_seal()
    key = api.get("/api/v1/audit/public-key/").json()
    assert key["algorithm"] == "ed25519"
    raw = load_pem_public_key(key["public_key_pem"].encode()).public_bytes_raw()
    assert key["key_id"] == hashlib.sha256(raw).hexdigest()
    page = api.get("/api/v1/audit/checkpoints/").json()
    assert [c["seq"] for c in page["results"]] == [5, 3] and page["count"] == 2  # newest first, anonymous
    for checkpoint in page["results"]:
        assert checkpoint["key_id"] == key["key_id"]
        assert _independently_valid(checkpoint, key["public_key_pem"])
        copy = json.loads(storage.read_bytes(f"{CHECKPOINT_PREFIX}{checkpoint['seq']:020d}.json"))
        assert copy == checkpoint  # the copy outside the database says the same
        for field in ("head", "sealed_at", "signature"):
            changed = dict(checkpoint)
            value = changed[field]
            changed[field] = value[:5] + ("1" if value[5] != "1" else "2") + value[6:]
            assert not _independently_valid(changed, key["public_key_pem"])
        assert not _independently_valid({**checkpoint, "seq": checkpoint["seq"] + 1}, key["public_key_pem"])
    assert api.get("/api/v1/audit/checkpoints/?seq=3").json()["results"] == [page["results"][1]]
    assert api.get("/api/v1/audit/checkpoints/?seq=x").status_code == 400
    report = audit_verify()
    assert (report.events, report.checkpoints, report.copies, report.problem) == (5, 2, 2, None)


@pytest.fixture
def triggers_dropped():
    """Drop the append-only triggers, as the database's administrator can; put them back afterwards."""
    migration = importlib.import_module("releases.migrations.0011_audit_sealing")
    with connection.cursor() as cursor:
        for table in migration._TABLES:
            cursor.execute(f"DROP TRIGGER {table}_append_only ON {table}")
    yield
    with connection.cursor() as cursor:
        for table, (seal, rest) in migration._TABLES.items():
            for statement in migration._postgresql(table, seal, rest):
                cursor.execute(statement)


def test_the_database_administrator_cannot_rewrite_history_past_the_copies(s3, alice, triggers_dropped):
    events = _append(alice, 6)
    audit_seal()
    assert AuditCheckpoint.objects.get().published_at is not None
    # Edit event 3, recompute every hash from it on, and remove the checkpoint that now disagrees.
    AuditEvent.objects.filter(pk=events[2].pk).update(reason="nothing to see here")
    prev = AuditEvent.objects.get(seq=2).hash
    for event in AuditEvent.objects.filter(seq__gte=3).order_by("seq"):
        event.prev_hash = prev
        event.hash = prev = event_hash(event)
        AuditEvent.objects.filter(pk=event.pk).update(prev_hash=event.prev_hash, hash=event.hash)
    AuditCheckpoint.objects.all().delete()
    assert audit_verify(copies=False).ok  # the database alone now tells a consistent, re-signed story…
    report = audit_verify()  # …which the copy in S3, written once, contradicts
    assert report.problem == f"copy {CHECKPOINT_PREFIX}{6:020d}.json: differs from checkpoint #6 in the database"
    with pytest.raises(CommandError, match="differs from checkpoint #6"):
        call_command("audit_verify")


def test_a_removed_checkpoint_is_found_by_its_copy(s3, alice, triggers_dropped):
    _append(alice, 2)
    audit_seal()
    _append(alice, 2)
    audit_seal()
    AuditCheckpoint.objects.filter(seq=2).delete()
    assert audit_verify().problem == \
        f"copy {CHECKPOINT_PREFIX}{2:020d}.json: the database has no checkpoint #2 (signed checkpoints were removed)"


def test_an_event_committed_late_is_sealed_after_the_later_one_never_skipped_or_twice(alice):
    """Event A takes its id first but commits after event B; a seal runs in between."""
    appended, release = threading.Event(), threading.Event()
    late = {}

    def slow_writer():
        try:
            with transaction.atomic():
                late["event"] = audit_record(actor=None, action="test.late", target=TARGET)
                appended.set()
                release.wait(timeout=30)
        finally:
            connection.close()

    writer = threading.Thread(target=slow_writer)
    writer.start()
    assert appended.wait(timeout=30)
    early = audit_record(actor=alice, action="test.early", target=TARGET)
    assert late["event"].pk < early.pk
    first = audit_seal()  # sees B only: A is not committed
    assert (first.seq, AuditEvent.objects.get(pk=early.pk).seq) == (1, 1)
    release.set()
    writer.join(timeout=30)
    second = audit_seal()
    assert (second.seq, AuditEvent.objects.get(pk=late["event"].pk).seq) == (2, 2)
    assert audit_seal() is None
    assert not AuditEvent.objects.filter(seq__isnull=True).exists()
    assert audit_verify(copies=False).ok


def _check_proof(proof: dict, public_key_pem: str) -> bool:
    """A proof checked with hashlib and cryptography only, as README describes."""
    def digest(fields: dict) -> str:
        canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        return hashlib.sha256(fields["prev_hash"].encode() + canonical).hexdigest()

    current = digest(proof["event"]["fields"])
    if current != proof["event"]["hash"]:
        return False
    for fields in proof["following"]:
        if fields["prev_hash"] != current:
            return False
        current = digest(fields)
    return current == proof["checkpoint"]["head"] and _independently_valid(proof["checkpoint"], public_key_pem)


def test_staff_get_a_proof_of_one_event_that_checks_against_a_checkpoint(api, s3, alice, rita):
    events = _append(alice, 4)
    audit_seal()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token_for(alice)}")
    late = audit_record(actor=alice, action="test.unsealed", target=TARGET)
    proof = api.get(f"/api/v1/audit/events/{events[1].pk}/proof/").json()
    assert proof["event"]["fields"]["seq"] == 2 and proof["checkpoint"]["seq"] == 4
    assert [f["seq"] for f in proof["following"]] == [3, 4]
    pem = api.get("/api/v1/audit/public-key/").json()["public_key_pem"]
    assert _check_proof(proof, pem)
    forged = json.loads(json.dumps(proof))
    forged["event"]["fields"]["reason"] = "event X"
    assert not _check_proof(forged, pem)
    fresh = api.get(f"/api/v1/audit/events/{late.pk}/proof/")  # sealed on demand
    assert fresh.status_code == 200 and _check_proof(fresh.json(), pem)
    assert api.get("/api/v1/audit/events/999999/proof/").json()["error"] == "audit_event_not_found"
    assert api.get(f"/api/v1/audit/events/{events[1].pk}/proof/?checkpoint=3").json()["error"] == \
        "checkpoint_not_found"
    api.credentials(HTTP_AUTHORIZATION=f"Token {token_for(rita)}")
    assert api.get(f"/api/v1/audit/events/{events[1].pk}/proof/").status_code == 403
    api.credentials()
    assert api.get(f"/api/v1/audit/events/{events[1].pk}/proof/").status_code == 401


def test_a_checkpoint_made_while_storage_is_down_is_published_by_the_next_seal(s3, alice, settings):
    from devstack.procs import free_port

    endpoint = settings.S3_ENDPOINT_URL
    settings.S3_ENDPOINT_URL = f"http://127.0.0.1:{free_port()}"
    _append(alice, 2)
    audit_seal()
    assert AuditCheckpoint.objects.get().published_at is None  # sealed and signed all the same
    settings.S3_ENDPOINT_URL = endpoint
    _append(alice, 1)
    audit_seal()
    assert not AuditCheckpoint.objects.filter(published_at__isnull=True).exists()
    assert audit_verify().copies == 2


def test_the_daily_verification_tells_staff_when_the_trail_is_broken(s3, alice, triggers_dropped):
    from releases.tasks import verify_audit_trail_task

    events = _append(alice, 3)
    assert verify_audit_trail_task()["problem"] is None
    assert not OutboxMessage.objects.filter(event="audit.verify_failed").exists()
    AuditEvent.objects.filter(pk=events[0].pk).update(reason="rewritten")
    result = verify_audit_trail_task()
    assert "event #1" in result["problem"]
    message = OutboxMessage.objects.get(event="audit.verify_failed")
    assert "alice@example.org" in message.recipients and result["problem"] in message.body


def test_the_public_checkpoints_need_no_account_and_leak_nothing_else(alice, s3):
    _append(alice, 1)
    audit_seal()
    from django.test import Client

    body = Client().get("/api/v1/audit/checkpoints/").json()["results"][0]
    assert set(body) == {"seq", "head", "sealed_at", "key_id", "signature"}
    assert requests.get(storage.presign_get(f"{CHECKPOINT_PREFIX}{1:020d}.json", ttl_s=60), timeout=10).json() == body
