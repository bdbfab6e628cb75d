"""A revision's id: 40 lowercase hex digits of SHA-256 over its sorted file list and its hyperparameters.

The same files (names, sizes, sha256) with the same hyperparameters always give the same id, on any machine
and for ever: clients pin releases to it, and the migration that gave the first revisions their ids used this
very function. Never change it.
"""

import hashlib
import json

REVISION_ID_CHARS = 40


def revision_id(files: list[tuple[str, int, str]], hparams: dict) -> str:
    """`files` as (filename, bytes, sha256); their order does not matter."""
    payload = {"files": sorted([name, int(size), sha256.lower()] for name, size, sha256 in files),
               "hparams": {key: hparams[key] for key in sorted(hparams)}}
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    return hashlib.sha256(canonical).hexdigest()[:REVISION_ID_CHARS]
