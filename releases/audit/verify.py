"""Verifying the audit trail: the chain, every signed checkpoint, and the copies published in S3.

A database administrator can edit an event and recompute every hash after it; what they cannot do is sign.
So the chain is checked against the checkpoints (each head must be the hash of its event, each signature
valid under the public key), and the checkpoints against their copies in S3 and against any checkpoint
someone saved elsewhere (`--checkpoint FILE`). The first problem found is named.
"""

import json
from dataclasses import dataclass

from registry import storage
from releases.audit import signing
from releases.audit.chain import GENESIS_HASH, event_hash
from releases.audit.models import AuditCheckpoint, AuditEvent
from releases.audit.sealer import (
    CHECKPOINT_PREFIX,
    audit_seal,
    checkpoint_bytes,
    checkpoint_document,
    checkpoint_key,
)


@dataclass(frozen=True)
class AuditReport:
    events: int  # sealed events verified
    checkpoints: int
    copies: int  # S3 copies compared
    problem: str | None  # the first one, naming the event, checkpoint or copy

    @property
    def ok(self) -> bool:
        return self.problem is None


def audit_verify(*, seal: bool = True, copies: bool = True, saved: dict | None = None,
                 batch_size: int = 2000) -> AuditReport:
    """Seal what is waiting (unless `seal` is False), then check the chain, the checkpoints and (with `copies`)
    their S3 copies, and a `saved` checkpoint if given."""
    if seal:
        audit_seal()
    checkpoints = {c.seq: c for c in AuditCheckpoint.objects.order_by("seq")}
    wanted = set(checkpoints) | ({saved.get("seq")} if saved else set())
    events, hashes, problem = _chain(wanted, batch_size)
    counts = {"events": events, "checkpoints": 0, "copies": 0}
    if problem is None:
        problem = _checkpoints(checkpoints, hashes, events, counts)
    if problem is None and copies:
        problem = _copies(checkpoints, counts)
    if problem is None and saved is not None:
        problem = _saved(saved, hashes, events)
    return AuditReport(problem=problem, **counts)


def _chain(wanted: set, batch_size: int) -> tuple[int, dict[int, str], str | None]:
    """Walk the sealed events in order; the hashes at the `wanted` positions."""
    expected_prev, expected_seq, hashes = GENESIS_HASH, 1, {}
    after = 0
    while batch := list(AuditEvent.objects.filter(seq__gt=after).order_by("seq")[:batch_size]):
        for event in batch:
            where = f"event #{event.seq} (id {event.pk}, {event.action})"
            if event.seq != expected_seq:
                return expected_seq - 1, hashes, f"event #{expected_seq} is missing (the next is #{event.seq})"
            if event.prev_hash != expected_prev:
                return expected_seq - 1, hashes, f"{where}: its previous-hash link does not match the event before"
            if event_hash(event) != event.hash:
                return expected_seq - 1, hashes, f"{where}: its contents do not match its hash"
            if event.seq in wanted:
                hashes[event.seq] = event.hash
            expected_prev, expected_seq = event.hash, expected_seq + 1
        after = batch[-1].seq
    return expected_seq - 1, hashes, None


def _checkpoints(checkpoints: dict[int, AuditCheckpoint], hashes: dict[int, str], events: int,
                 counts: dict) -> str | None:
    public = signing.public_key()
    previous = 0
    for seq, checkpoint in checkpoints.items():
        document = checkpoint_document(checkpoint)
        if checkpoint.key_id != public.key_id:
            return f"checkpoint #{seq}: signed by key {checkpoint.key_id}, not the audit key {public.key_id}"
        if not signing.signature_valid(document, public.key):
            return f"checkpoint #{seq}: its signature is not valid"
        if seq > events:
            return f"checkpoint #{seq}: the chain has only {events} events"
        if hashes[seq] != checkpoint.head:
            return (f"checkpoint #{seq}: its head is not the hash of event #{seq}: an event in #{previous + 1}"
                    f"–#{seq} was changed after it was signed")
        previous = seq
        counts["checkpoints"] += 1
    if events > previous:
        return f"events #{previous + 1}–#{events} are sealed but no signed checkpoint covers them"
    return None


def _copies(checkpoints: dict[int, AuditCheckpoint], counts: dict) -> str | None:
    """Every copy in S3 is a checkpoint the database has, byte for byte; every published checkpoint has its
    copy. Copies are compared first: they are what the database's administrators cannot rewrite."""
    public = signing.public_key()
    stored = storage.list_keys(CHECKPOINT_PREFIX)
    for key in stored:
        body = storage.read_bytes(key)
        try:
            document = json.loads(body)
            seq = int(document["seq"])
        except (ValueError, KeyError, TypeError):
            return f"copy {key}: not a checkpoint"
        if not signing.signature_valid(document, public.key):
            return f"copy {key}: its signature is not valid"
        checkpoint = checkpoints.get(seq)
        if checkpoint is None:
            return f"copy {key}: the database has no checkpoint #{seq} (signed checkpoints were removed)"
        if body != checkpoint_bytes(checkpoint):
            return f"copy {key}: differs from checkpoint #{seq} in the database"
        counts["copies"] += 1
    published = set(stored)
    for seq, checkpoint in checkpoints.items():
        if checkpoint.published_at is not None and checkpoint_key(seq) not in published:
            return f"checkpoint #{seq}: its published copy is missing from S3"
    return None


def _saved(saved: dict, hashes: dict[int, str], events: int) -> str | None:
    """A checkpoint kept elsewhere: genuinely signed, and the chain still ends there in its head."""
    try:
        seq = int(saved["seq"])
        head = saved["head"]
    except (KeyError, TypeError, ValueError):
        return "the saved checkpoint lacks seq or head"
    if not signing.signature_valid(saved, signing.public_key().key):
        return f"the saved checkpoint #{seq}: its signature is not valid under the audit key"
    if seq > events:
        return f"the saved checkpoint #{seq}: the chain now has only {events} events (history was removed)"
    if hashes.get(seq) != head:
        return f"the saved checkpoint #{seq}: the chain's event #{seq} no longer has that hash (history before it " \
               "was rewritten)"
    return None
