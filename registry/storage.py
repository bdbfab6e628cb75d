"""The one wrapper around boto3: SigV4 always, checksummed uploads, heads, presigned GETs, deletes.

Configured from settings (S3_*). Every failure to reach S3 becomes StorageUnavailable (HTTP 503).
"""

import hashlib
import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings

from config.errors import DomainError, NotFound, ServiceUnavailable

LINK_TTL_MAX_S = 60 * 60
_HASH_CHUNK_BYTES = 1024 * 1024


class StorageUnavailable(ServiceUnavailable):
    code = "storage_unavailable"


class ChecksumMismatch(DomainError):
    code = "checksum_mismatch"
    http_status = 422


class ObjectExists(DomainError):
    """A write-once key already holds an object."""

    code = "object_exists"
    http_status = 409


class ObjectMissing(NotFound):
    code = "object_missing"


@dataclass(frozen=True)
class StoredObject:
    key: str
    bytes: int
    sha256: str | None  # from the object's metadata, written at upload


@lru_cache(maxsize=8)
def _client(endpoint_url: str, access_key: str, secret_key: str, region: str, connect_timeout_s: int):
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url or None,
        aws_access_key_id=access_key or None,
        aws_secret_access_key=secret_key or None,
        region_name=region,
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            connect_timeout=connect_timeout_s,
            read_timeout=60,
            retries={"max_attempts": 3, "mode": "standard"},
            # Newer boto3 adds CRC trailers by default that S3-compatible servers may not accept;
            # integrity is ours to check (sha256 below).
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


def client(*, public: bool = False):
    endpoint = settings.S3_ENDPOINT_URL
    if public and settings.S3_PUBLIC_ENDPOINT_URL:
        endpoint = settings.S3_PUBLIC_ENDPOINT_URL
    return _client(
        endpoint, settings.S3_ACCESS_KEY_ID, settings.S3_SECRET_ACCESS_KEY, settings.S3_REGION,
        settings.S3_CONNECT_TIMEOUT_S,
    )


def _unavailable(exc: Exception) -> StorageUnavailable:
    return StorageUnavailable(f"Object storage is unreachable or refused the request ({type(exc).__name__}).")


def _is_missing(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}


def sha256_of_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_HASH_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _chunks(handle: BinaryIO, size: int) -> Iterator[bytes]:
    while chunk := handle.read(size):
        yield chunk


BLOB_PREFIX = "blobs/sha256/"
SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def blob_key(sha256: str) -> str:
    """Where a file with these bytes lives: every revision that holds them shares the one object."""
    return f"{BLOB_PREFIX}{sha256.lower()}"


def blob_put(path: Path, *, expected_sha256: str | None = None) -> StoredObject:
    """Store a file under its content's key, once: an object already there (the same bytes) is never
    overwritten, not even by a concurrent upload of the same file (the store refuses a second write)."""
    sha256 = sha256_of_file(Path(path))
    if expected_sha256 is not None and sha256 != expected_sha256.lower():
        raise ChecksumMismatch(f"{Path(path).name}: sha256 is {sha256}, expected {expected_sha256}.",
                               expected=expected_sha256, actual=sha256)
    key = blob_key(sha256)
    try:
        existing = head(key)
    except ObjectMissing:
        return upload_file(path, key, expected_sha256=sha256, only_if_absent=True)
    if existing.sha256 != sha256 or existing.bytes != Path(path).stat().st_size:
        raise ChecksumMismatch(f"{key} holds other bytes than its name says; refusing to use it.")
    return existing


def blob_put_bytes(data: bytes) -> str:
    """Store bytes under their content's key, once (as blob_put); returns their sha256."""
    sha256 = hashlib.sha256(data).hexdigest()
    try:
        upload_bytes(data, blob_key(sha256), only_if_absent=True)
    except ObjectExists:
        pass  # the same bytes, by their name; blob_get checks them whenever they are read
    return sha256


def blob_get(sha256: str, *, cache_dir: Path | None = None) -> bytes:
    """The bytes stored under `sha256`, checked against it; kept in `cache_dir` (a host's cache, safe to lose:
    a cached copy is checked as well, and fetched again if it does not match)."""
    sha256 = sha256.lower()
    if not SHA256_HEX.fullmatch(sha256):
        raise ValueError(f"not a sha256: {sha256[:80]!r}")  # it names a cache file and an object key
    cached = Path(cache_dir) / sha256 if cache_dir is not None else None
    if cached is not None and cached.is_file():
        data = cached.read_bytes()
        if hashlib.sha256(data).hexdigest() == sha256:
            return data
    data = read_bytes(blob_key(sha256))
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ChecksumMismatch(f"{blob_key(sha256)} holds other bytes than its name says; refusing to use it.",
                               expected=sha256, actual=hashlib.sha256(data).hexdigest())
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_name(f"{sha256}.partial-{os.getpid()}-{threading.get_ident()}")
        partial.write_bytes(data)
        partial.replace(cached)
    return data


def upload_file(path: Path, key: str, *, expected_sha256: str | None = None,
                content_type: str = "application/octet-stream", only_if_absent: bool = False) -> StoredObject:
    """Upload a file in parts, refusing it if its sha256 is not the expected one.

    The hash is taken twice: before the upload (to refuse a wrong file without sending it) and over
    the bytes actually sent (so a file changing underneath aborts the upload instead of storing it).
    `only_if_absent`: the store completes the upload only if no object has the key yet (If-None-Match); if
    one appeared meanwhile, that object is the answer and nothing is overwritten.
    """
    path = Path(path)
    sha256 = sha256_of_file(path)
    if expected_sha256 is not None and sha256 != expected_sha256.lower():
        raise ChecksumMismatch(
            f"{path.name}: sha256 is {sha256}, expected {expected_sha256}.", expected=expected_sha256, actual=sha256
        )
    s3, bucket, chunk_bytes = client(), settings.S3_BUCKET, settings.S3_MULTIPART_CHUNK_BYTES
    sent, size = hashlib.sha256(), 0
    try:
        upload = s3.create_multipart_upload(
            Bucket=bucket, Key=key, ContentType=content_type, Metadata={"sha256": sha256}
        )
        upload_id, parts = upload["UploadId"], []
        try:
            with open(path, "rb") as handle:
                for number, chunk in enumerate(_chunks(handle, chunk_bytes), start=1):
                    sent.update(chunk)
                    size += len(chunk)
                    part = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=chunk)
                    parts.append({"ETag": part["ETag"], "PartNumber": number})
            if not parts:  # an empty file still needs one (empty) part
                part = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=b"")
                parts.append({"ETag": part["ETag"], "PartNumber": 1})
            if sent.hexdigest() != sha256:
                raise ChecksumMismatch(f"{path.name} changed while it was being uploaded; nothing was stored.")
            s3.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts},
                **({"IfNoneMatch": "*"} if only_if_absent else {}),
            )
        except BaseException:
            try:
                s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            except (BotoCoreError, ClientError):
                pass  # the original error is the one to report
            raise
    except ClientError as exc:
        if only_if_absent and exc.response.get("Error", {}).get("Code") == "PreconditionFailed":
            return head(key)  # stored meanwhile by another upload of the same bytes
        raise _unavailable(exc) from exc
    except BotoCoreError as exc:
        raise _unavailable(exc) from exc
    return StoredObject(key=key, bytes=size, sha256=sha256)


@contextmanager
def _s3_errors(key: str):
    """Translate boto3's failures: a missing object is ObjectMissing (404), anything else a 503."""
    try:
        yield
    except ClientError as exc:
        if _is_missing(exc):
            raise ObjectMissing(f"No stored object for {key!r}.") from exc
        raise _unavailable(exc) from exc
    except BotoCoreError as exc:
        raise _unavailable(exc) from exc


def upload_bytes(data: bytes, key: str, *, content_type: str = "application/octet-stream",
                 only_if_absent: bool = False) -> StoredObject:
    """`only_if_absent`: write once; if the key holds an object already, nothing is written and ObjectExists
    is raised (If-None-Match, checked by the store, so two writers cannot both succeed)."""
    sha256 = hashlib.sha256(data).hexdigest()
    try:
        with _s3_errors(key):
            client().put_object(
                Bucket=settings.S3_BUCKET, Key=key, Body=data, ContentType=content_type, Metadata={"sha256": sha256},
                **({"IfNoneMatch": "*"} if only_if_absent else {}),
            )
    except StorageUnavailable as exc:
        cause = exc.__cause__
        if only_if_absent and isinstance(cause, ClientError) and \
                cause.response.get("Error", {}).get("Code") == "PreconditionFailed":
            raise ObjectExists(f"{key} already holds an object; it is never overwritten.") from cause
        raise
    return StoredObject(key=key, bytes=len(data), sha256=sha256)


def head(key: str) -> StoredObject:
    with _s3_errors(key):
        response = client().head_object(Bucket=settings.S3_BUCKET, Key=key)
    return StoredObject(key=key, bytes=response["ContentLength"], sha256=response.get("Metadata", {}).get("sha256"))


# (endpoint, bucket, key) → (time.monotonic() of the HEAD, its answer): this process's recent successful HEADs.
_recent_heads: dict[tuple[str, str, str], tuple[float, StoredObject]] = {}
_RECENT_HEADS_MAX = 10_000


def head_recent(key: str, *, within_s: float) -> StoredObject:
    """`head(key)`, or this process's answer to it from the last `within_s` seconds.

    For callers that ask about the same objects many times a second (download links): a HEAD costs the
    platform and the store more than issuing the link does. Only successes are remembered, so a missing
    object or an unreachable store is seen by the first call after the window.
    """
    now = time.monotonic()
    where = (settings.S3_ENDPOINT_URL, settings.S3_BUCKET, key)
    if within_s > 0 and (seen := _recent_heads.get(where)) is not None and now - seen[0] < within_s:
        return seen[1]
    stored = head(key)
    if len(_recent_heads) >= _RECENT_HEADS_MAX:
        _recent_heads.clear()
    _recent_heads[where] = (now, stored)
    return stored


def read_bytes(key: str) -> bytes:
    """An object's bytes, in memory (shards, manifests, corpora up to STAGEGATE_CORPUS_MAX_BYTES); weights go
    through download_file."""
    with _s3_errors(key):
        return client().get_object(Bucket=settings.S3_BUCKET, Key=key)["Body"].read()


def list_sizes(prefix: str) -> list[tuple[str, int]]:
    """(key, bytes) of every object under prefix, sorted by key."""
    with _s3_errors(prefix):
        pages = client().get_paginator("list_objects_v2").paginate(Bucket=settings.S3_BUCKET, Prefix=prefix)
        return sorted((item["Key"], item["Size"]) for page in pages for item in page.get("Contents", []))


def list_keys(prefix: str) -> list[str]:
    """The keys of every object under prefix, sorted."""
    return [key for key, _size in list_sizes(prefix)]


def read_head(key: str, max_bytes: int) -> bytes:
    """The first max_bytes of an object (a ranged GET): a preview without fetching the whole file."""
    with _s3_errors(key):
        response = client().get_object(Bucket=settings.S3_BUCKET, Key=key, Range=f"bytes=0-{max_bytes - 1}")
        return response["Body"].read()


def download_file(key: str, path: Path) -> StoredObject:
    """Fetch an object to a local file and check it against the sha256 recorded at upload."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stored = head(key)
    with _s3_errors(key):
        client().download_file(settings.S3_BUCKET, key, str(path))
    if stored.sha256 and sha256_of_file(path) != stored.sha256:
        path.unlink(missing_ok=True)
        raise ChecksumMismatch(f"{key}: downloaded bytes do not match the recorded sha256.")
    return stored


def presign_get(key: str, *, ttl_s: int, download_name: str | None = None) -> str:
    """A SigV4 presigned GET, valid for ttl_s seconds (at most an hour), as an attachment download."""
    if not 1 <= ttl_s <= LINK_TTL_MAX_S:
        raise ValueError(f"ttl_s must be between 1 and {LINK_TTL_MAX_S}, got {ttl_s}")
    params = {"Bucket": settings.S3_BUCKET, "Key": key}
    if download_name:
        params["ResponseContentDisposition"] = f'attachment; filename="{download_name}"'
    try:
        return client(public=True).generate_presigned_url("get_object", Params=params, ExpiresIn=ttl_s)
    except BotoCoreError as exc:
        raise _unavailable(exc) from exc


def delete(key: str) -> None:
    with _s3_errors(key):
        client().delete_object(Bucket=settings.S3_BUCKET, Key=key)


def ensure_bucket() -> None:
    s3 = client()
    try:
        s3.head_bucket(Bucket=settings.S3_BUCKET)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in {"404", "NoSuchBucket", "NotFound"}:
            raise _unavailable(exc) from exc
        try:
            s3.create_bucket(Bucket=settings.S3_BUCKET)
        except (BotoCoreError, ClientError) as create_exc:
            raise _unavailable(create_exc) from create_exc
    except BotoCoreError as exc:
        raise _unavailable(exc) from exc
