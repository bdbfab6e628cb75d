"""The sealer: the one writer of the chain. It takes the events committed since the last seal, gives each its
place (`seq`, `prev_hash`, `hash`; releases/audit/chain.py), and signs a checkpoint over the new head.

Order. Events are sealed in `id` order among those not yet sealed, and the work list is "not yet sealed",
never "id above the last one sealed": an event whose transaction commits after a later-numbered one was
sealed is simply invisible to that seal and sealed by the next, after it. So no event is skipped, and none is
sealed twice (`seq` is set once, from empty, which the database's triggers enforce). The chain's order is the
order of sealing; `id` only breaks ties inside one seal.

Concurrency. Sealers (beat every STAGEGATE_AUDIT_SEAL_INTERVAL_S, `audit_verify`, a proof) exclude one another
with a lock only they take; appending events (releases/audit/chain.py) takes none.

Publication. Each checkpoint is copied to S3 under audit/checkpoints/, written once (If-None-Match): the
copies are outside the database, so rewriting the database does not rewrite them. A copy that fails (S3
down) is retried by the next seal and by `audit_verify`.
"""

import json
import logging
from datetime import UTC

from django.db import connection, transaction
from django.utils import timezone

from registry import storage
from releases.audit import signing
from releases.audit.chain import GENESIS_HASH, event_hash
from releases.audit.models import AuditCheckpoint, AuditEvent

log = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "audit/checkpoints/"
SEAL_BATCH = 5000
# pg_advisory_xact_lock key, taken by sealers only.
_SEAL_LOCK_KEY = int.from_bytes(b"SGSEAL", "big")


def checkpoint_document(checkpoint: AuditCheckpoint) -> dict:
    """The checkpoint as published (API and S3): `signature` covers the other four fields."""
    return {"seq": checkpoint.seq, "head": checkpoint.head, "sealed_at": checkpoint.sealed_at,
            "key_id": checkpoint.key_id, "signature": checkpoint.signature}


def checkpoint_key(seq: int) -> str:
    return f"{CHECKPOINT_PREFIX}{seq:020d}.json"  # zero-padded: the store lists them in order


def checkpoint_bytes(checkpoint: AuditCheckpoint) -> bytes:
    return json.dumps(checkpoint_document(checkpoint), sort_keys=True, separators=(",", ":")).encode()


def sealed_at_now() -> str:
    return timezone.now().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def audit_seal() -> AuditCheckpoint | None:
    """Seal what is waiting, in batches of SEAL_BATCH, one checkpoint per batch, until a batch is not full;
    return the last checkpoint made (None if nothing was waiting). Copies are published after the commit."""
    made = None
    while _waiting():
        checkpoint, full = _seal_batch()
        made = checkpoint or made
        if not full:
            break
    checkpoints_publish_pending()
    return made


def _waiting() -> bool:
    """Unsealed events (the partial index makes this cheap when idle), or a chain no checkpoint signs yet."""
    return AuditEvent.objects.filter(seq__isnull=True).exists() or (
        AuditEvent.objects.exists() and not AuditCheckpoint.objects.exists())


@transaction.atomic
def _seal_batch() -> tuple[AuditCheckpoint | None, bool]:
    public = signing.public_key()  # no key, no seal: fail before touching a row
    _lock_sealers()
    pending = list(AuditEvent.objects.select_for_update().filter(seq__isnull=True).order_by("id")[:SEAL_BATCH])
    seq, prev = AuditEvent.objects.filter(seq__isnull=False).order_by("-seq").values_list("seq", "hash").first() \
        or (0, GENESIS_HASH)
    if not pending:
        if seq and not AuditCheckpoint.objects.exists():
            # The chain as it stood before checkpoints existed (migration 0011) is signed as it is, once.
            return _checkpoint(seq, prev, public), False
        return None, False  # another sealer took them while this one waited
    for event in pending:
        seq += 1
        event.seq, event.prev_hash = seq, prev
        event.hash = prev = event_hash(event)
    AuditEvent.objects.bulk_update(pending, ["seq", "prev_hash", "hash"], batch_size=1000)
    return _checkpoint(seq, prev, public), len(pending) == SEAL_BATCH


def _checkpoint(seq: int, head: str, public: signing.PublicKey) -> AuditCheckpoint:
    document = {"seq": seq, "head": head, "sealed_at": sealed_at_now(), "key_id": public.key_id}
    return AuditCheckpoint.objects.create(**document, signature=signing.sign(document))


def _lock_sealers() -> None:
    # SQLite serialises writers itself; a second sealer there fails its write and seals next time.
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_SEAL_LOCK_KEY])


def checkpoints_publish_pending() -> int:
    """Copy every checkpoint not yet in S3 there, once each, after the current transaction commits; returns how
    many were waiting. Storage being down leaves them waiting for the next call."""
    waiting = list(AuditCheckpoint.objects.filter(published_at__isnull=True).order_by("seq"))
    if waiting:
        transaction.on_commit(lambda: [checkpoint_publish(checkpoint) for checkpoint in waiting])
    return len(waiting)


def checkpoint_publish(checkpoint: AuditCheckpoint) -> bool:
    body = checkpoint_bytes(checkpoint)
    key = checkpoint_key(checkpoint.seq)
    try:
        storage.upload_bytes(body, key, content_type="application/json", only_if_absent=True)
    except storage.ObjectExists:
        if storage.read_bytes(key) != body:  # never overwritten: audit_verify reports the disagreement
            log.error("The published copy %s differs from checkpoint #%s in the database.", key, checkpoint.seq)
            return False
    except storage.StorageUnavailable:
        log.warning("Could not publish audit checkpoint #%s; it will be retried.", checkpoint.seq)
        return False
    AuditCheckpoint.objects.filter(pk=checkpoint.pk, published_at__isnull=True).update(published_at=timezone.now())
    return True
