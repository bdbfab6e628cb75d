"""The key that signs audit checkpoints: Ed25519, read from a file or the environment, never from or into the
database. Whoever administers the database can rewrite rows but cannot sign, so a rewrite shows against any
checkpoint signed before it.

STAGEGATE_AUDIT_KEY_FILE names a PEM (PKCS #8) private key; STAGEGATE_AUDIT_KEY holds one inline (PEM, or
the 32-byte private key as 64 hex digits). `manage.py audit_key PATH` writes a new one. Production refuses to
start without one; `make demo` and the tests make their own under `.run/`.
"""

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

ALGORITHM = "ed25519"
SIGNED_FIELDS = ("head", "key_id", "sealed_at", "seq")


class SigningKeyMissing(ImproperlyConfigured):
    pass


@dataclass(frozen=True)
class PublicKey:
    key_id: str
    pem: str
    key: Ed25519PublicKey


def signed_bytes(checkpoint: dict) -> bytes:
    """What a signature covers: the checkpoint's other fields as canonical JSON, UTF-8
    (`{"head":…,"key_id":…,"sealed_at":…,"seq":…}`, keys sorted, no whitespace)."""
    return json.dumps({name: checkpoint[name] for name in SIGNED_FIELDS}, sort_keys=True,
                      separators=(",", ":"), ensure_ascii=False).encode()


def key_id_of(public: Ed25519PublicKey) -> str:
    """Lowercase hex SHA-256 of the raw 32-byte public key."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def _load(text: str) -> Ed25519PrivateKey:
    text = text.strip()
    if len(text) == 64 and all(c in "0123456789abcdefABCDEF" for c in text):
        return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(text))
    key = serialization.load_pem_private_key(text.encode(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ImproperlyConfigured("The audit signing key must be an Ed25519 key.")
    return key


@lru_cache(maxsize=4)
def _private_key(inline: str, path: str) -> Ed25519PrivateKey:
    if inline:
        return _load(inline)
    if path:
        try:
            return _load(Path(path).read_text())
        except FileNotFoundError:
            raise SigningKeyMissing(f"STAGEGATE_AUDIT_KEY_FILE: no file {path}") from None
    raise SigningKeyMissing("No audit signing key: set STAGEGATE_AUDIT_KEY_FILE (or STAGEGATE_AUDIT_KEY); "
                            "`manage.py audit_key PATH` writes one.")


def private_key() -> Ed25519PrivateKey:
    return _private_key(settings.STAGEGATE_AUDIT_KEY, settings.STAGEGATE_AUDIT_KEY_FILE)


def public_key() -> PublicKey:
    public = private_key().public_key()
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return PublicKey(key_id=key_id_of(public), pem=pem, key=public)


def sign(checkpoint: dict) -> str:
    """Base64 (RFC 4648, with padding) of the Ed25519 signature over `signed_bytes(checkpoint)`."""
    return base64.b64encode(private_key().sign(signed_bytes(checkpoint))).decode()


def signature_valid(checkpoint: dict, public: Ed25519PublicKey) -> bool:
    try:
        public.verify(base64.b64decode(checkpoint["signature"], validate=True), signed_bytes(checkpoint))
    except (InvalidSignature, ValueError, TypeError, KeyError):
        return False
    return True


def key_file_write(path: Path) -> str:
    """A new private key at `path` (created, owner-only; never overwritten). Returns its key id."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    return key_id_of(key.public_key())
