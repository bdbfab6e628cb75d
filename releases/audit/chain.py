"""The audit trail: appending events, and the hash that chains them.

Appending is one INSERT, with no lock and no chain computation: the event's `id` comes from the database's
sequence and it is chained later by the sealer (releases/audit/sealer.py), so the link path and every other
request never wait on one another for the trail.

Chain: event `seq`'s hash is sha256(prev_hash || canonical_json(fields)), where fields are the event's
contents with its `seq` and `prev_hash` (`event_fields`), canonical JSON has sorted keys, `,`/`:`
separators and UTF-8 text, and the first event's prev_hash is 64 zeros. Editing, removing or reordering any
sealed event changes every hash after it, and so the heads of the signed checkpoints.
"""

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import models
from django.utils import timezone

from releases.audit.context import acting_token
from releases.audit.models import AuditEvent

GENESIS_HASH = "0" * 64


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


def canonical(fields: dict) -> bytes:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def event_fields(event: AuditEvent) -> dict:
    """What an event's hash covers, as plain JSON values (also what a proof hands out)."""
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


def fields_hash(fields: dict) -> str:
    return hashlib.sha256(fields["prev_hash"].encode() + canonical(fields)).hexdigest()


def event_hash(event: AuditEvent) -> str:
    return fields_hash(event_fields(event))


def audit_record(
    *, actor, action: str, target: models.Model | AuditTarget, before=None, after=None, reason: str = "",
    ip: str | None = None, data: dict | None = None,
) -> AuditEvent:
    """Append one event. `actor` is a user, or None for the system (embargo task, seeds); a request made with an
    API token adds the token's public prefix to `data` as `via_token`.

    It is written in the caller's transaction, so it commits or rolls back with the change it records.
    """
    target = target_of(target)
    if (token_key := acting_token()) is not None:
        data = {**(data or {}), "via_token": token_key}
    return AuditEvent.objects.create(
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
    )


def _jsonable(value):
    # Round-trip through JSON so what is hashed later is exactly what the database gives back.
    return None if value is None else json.loads(canonical(value))
