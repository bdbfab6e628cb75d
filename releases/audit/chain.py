"""The audit trail: one append-only, hash-chained row per governance event, and its verification.

Each row's hash is sha256 over the previous row's hash and the canonical JSON of the row, so
editing, removing or reordering any row breaks every hash after it. Appends are serialised (an
advisory lock on PostgreSQL; SQLite serialises writers itself) and `seq`/`prev_hash` are unique,
so concurrent writers cannot fork the chain.
"""

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import connection, models, transaction
from django.utils import timezone

from releases.audit.context import acting_token
from releases.audit.models import AuditEvent

GENESIS_HASH = "0" * 64
# pg_advisory_xact_lock key: any bigint unique to this use.
_AUDIT_LOCK_KEY = int.from_bytes(b"SGAUDIT", "big")


@dataclass(frozen=True)
class AuditTarget:
    type: str
    id: str
    label: str


def target_of(obj: models.Model | AuditTarget) -> AuditTarget:
    if isinstance(obj, AuditTarget):
        return obj
    meta = obj._meta
    return AuditTarget(type=f"{meta.app_label}.{meta.model_name}", id=str(obj.pk), label=str(obj)[:200])


def _canonical(fields: dict) -> bytes:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def _hashed_fields(event: AuditEvent) -> dict:
    at: datetime = event.at
    return {
        "seq": event.seq,
        "at": at.astimezone(UTC).isoformat(timespec="microseconds"),
        "actor_id": event.actor_id,
        "actor_label": event.actor_label,
        "action": event.action,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "target_label": event.target_label,
        "before": event.before,
        "after": event.after,
        "reason": event.reason,
        "ip": event.ip,
        "data": event.data,
        "prev_hash": event.prev_hash,
    }


def event_hash(event: AuditEvent) -> str:
    return hashlib.sha256(event.prev_hash.encode() + _canonical(_hashed_fields(event))).hexdigest()


def _lock_chain() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_AUDIT_LOCK_KEY])


def _chain_head() -> tuple[int, str]:
    """The last row's seq and hash (0 and the genesis hash before the first). Written out: every issued
    link appends a row, and the ORM compiled this one-row read slower than PostgreSQL answered it."""
    with connection.cursor() as cursor:
        table = connection.ops.quote_name(AuditEvent._meta.db_table)
        cursor.execute(f"SELECT seq, hash FROM {table} ORDER BY seq DESC LIMIT 1")
        row = cursor.fetchone()
    return (row[0], row[1]) if row else (0, GENESIS_HASH)


def audit_record(
    *, actor, action: str, target: models.Model | AuditTarget, before=None, after=None, reason: str = "",
    ip: str | None = None, data: dict | None = None,
) -> AuditEvent:
    """Append one event. `actor` is a user, or None for the system (embargo task, seeds); a request made with an
    API token adds the token's public prefix to `data` as `via_token`.

    Inside a caller's transaction it takes no savepoint: if the append fails, the caller's whole
    transaction is rolled back with it (catching the error there and carrying on is not possible).
    """
    target = target_of(target)
    if (token_key := acting_token()) is not None:
        data = {**(data or {}), "via_token": token_key}
    with transaction.atomic(savepoint=False):
        _lock_chain()  # held until the outermost transaction commits
        last_seq, last_hash = _chain_head()
        event = AuditEvent(
            seq=last_seq + 1,
            at=timezone.now(),
            actor_id=str(actor.pk) if actor is not None else "",
            actor_label=actor.get_username() if actor is not None else "system",
            action=action,
            target_type=target.type,
            target_id=target.id,
            target_label=target.label,
            before=_jsonable(before),
            after=_jsonable(after),
            reason=reason or "",
            ip=ip or None,
            data=_jsonable(data) or {},
            prev_hash=last_hash,
        )
        event.hash = event_hash(event)
        event.save(force_insert=True)
    return event


def _jsonable(value):
    # Round-trip through JSON so what is hashed now is exactly what the database gives back later.
    return None if value is None else json.loads(_canonical(value))


# --------------------------------------------------------------------------- verification
@dataclass(frozen=True)
class ChainBreak:
    seq: int
    event_id: int
    problem: str


def audit_verify(*, batch_size: int = 2000) -> tuple[int, ChainBreak | None]:
    """Check the whole chain in order; return (rows checked, the first break or None)."""
    expected_prev = GENESIS_HASH
    expected_seq = 1
    checked = 0
    for event in _iterate(batch_size):
        if event.seq != expected_seq:
            return checked, ChainBreak(event.seq, event.pk, f"sequence gap: expected #{expected_seq}")
        if event.prev_hash != expected_prev:
            return checked, ChainBreak(event.seq, event.pk, "previous-hash link does not match the row before")
        if event_hash(event) != event.hash:
            return checked, ChainBreak(event.seq, event.pk, "contents do not match the stored hash")
        expected_prev = event.hash
        expected_seq += 1
        checked += 1
    return checked, None


def _iterate(batch_size: int) -> Iterator[AuditEvent]:
    after = 0
    while True:
        batch = list(AuditEvent.objects.filter(seq__gt=after).order_by("seq")[:batch_size])
        if not batch:
            return
        yield from batch
        after = batch[-1].seq
