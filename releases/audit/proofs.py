"""What checks one event against a signed checkpoint, for staff (GET /api/v1/audit/events/{id}/proof/).

The proof holds the event's fields, the fields of every event after it up to the checkpoint, and the
checkpoint. To check it: hash the event (sha256 of prev_hash followed by the canonical JSON of its fields:
keys sorted, `,` and `:` separators, UTF-8), then each following event in turn, each naming the previous hash
as its `prev_hash`; the last hash must be the checkpoint's `head`, and the checkpoint's signature must verify
under the audit public key (GET /api/v1/audit/public-key/). `proof_check` does exactly that.
"""

from config.errors import Conflict, DomainError, NotFound
from releases.audit import signing
from releases.audit.chain import event_fields, fields_hash
from releases.audit.models import AuditCheckpoint, AuditEvent
from releases.audit.sealer import audit_seal, checkpoint_document

# A proof against a far later checkpoint lists every event in between; past this, ask for the first one.
PROOF_MAX_EVENTS = 10_000


class AuditEventNotFound(NotFound):
    code = "audit_event_not_found"


class CheckpointNotFound(NotFound):
    code = "checkpoint_not_found"


class EventNotSealed(Conflict):
    code = "event_not_sealed"


class ProofTooLong(DomainError):
    code = "proof_too_long"
    http_status = 400


def event_proof(*, event_id: int, checkpoint_seq: int | None = None) -> dict:
    event = AuditEvent.objects.filter(pk=event_id).first()
    if event is None:
        raise AuditEventNotFound(f"No audit event {event_id}.")
    if event.seq is None:  # committed since the last seal: seal now rather than make staff wait
        audit_seal()
        event.refresh_from_db()
        if event.seq is None:
            raise EventNotSealed(f"Audit event {event_id} is not sealed yet; ask again in a few seconds.")
    checkpoints = AuditCheckpoint.objects.filter(seq__gte=event.seq)
    checkpoint = (checkpoints.filter(seq=checkpoint_seq) if checkpoint_seq is not None
                  else checkpoints.order_by("seq")).first()
    if checkpoint is None:
        raise CheckpointNotFound(f"No checkpoint #{checkpoint_seq} at or after event #{event.seq}."
                                 if checkpoint_seq is not None else f"No checkpoint covers event #{event.seq} yet.")
    if checkpoint.seq - event.seq > PROOF_MAX_EVENTS:
        first = checkpoints.order_by("seq").values_list("seq", flat=True).first()
        raise ProofTooLong(f"Checkpoint #{checkpoint.seq} is {checkpoint.seq - event.seq} events after this one; "
                           f"ask for ?checkpoint={first}, the first that covers it.")
    following = AuditEvent.objects.filter(seq__gt=event.seq, seq__lte=checkpoint.seq).order_by("seq")
    return {
        "event": {"id": event.pk, "hash": event.hash, "fields": event_fields(event)},
        "following": [event_fields(later) for later in following],
        "checkpoint": checkpoint_document(checkpoint),
    }


def proof_check(proof: dict, public_key) -> bool:
    """Does `proof` tie its event to its checkpoint, signed by `public_key` (an Ed25519PublicKey)?"""
    try:
        current = fields_hash(proof["event"]["fields"])
        if current != proof["event"]["hash"]:
            return False
        for fields in proof["following"]:
            if fields["prev_hash"] != current:
                return False
            current = fields_hash(fields)
        checkpoint = proof["checkpoint"]
        last_seq = (proof["following"][-1] if proof["following"] else proof["event"]["fields"])["seq"]
        return (current == checkpoint["head"] and last_seq == checkpoint["seq"]
                and signing.signature_valid(checkpoint, public_key))
    except (KeyError, TypeError, AttributeError):
        return False
