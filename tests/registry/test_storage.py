"""The boto3 wrapper against a real, signature-checking SeaweedFS."""

import hashlib
import time
from urllib.parse import parse_qs, urlencode, urlparse, urlunparse

import pytest
import requests

from registry import storage

pytestmark = pytest.mark.integration


def _write(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_upload_then_presigned_get_returns_the_bytes(s3, tmp_path, settings):
    settings.S3_MULTIPART_CHUNK_BYTES = 5 * 1024 * 1024  # S3's minimum part: forces three parts
    data = bytes(range(256)) * (12 * 1024 * 1024 // 256 + 7)
    stored = storage.upload_file(_write(tmp_path, "w.safetensors", data), "t/round/w.safetensors",
                                 expected_sha256=hashlib.sha256(data).hexdigest())
    assert stored.bytes == len(data)
    assert storage.head("t/round/w.safetensors").sha256 == hashlib.sha256(data).hexdigest()

    url = storage.presign_get("t/round/w.safetensors", ttl_s=60, download_name="w.safetensors")
    response = requests.get(url, timeout=30)
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["Content-Disposition"] == 'attachment; filename="w.safetensors"'


def test_ranged_presigned_get_gets_206(s3, tmp_path):
    storage.upload_file(_write(tmp_path, "r.txt", b"0123456789"), "t/range/r.txt")
    url = storage.presign_get("t/range/r.txt", ttl_s=60)
    response = requests.get(url, headers={"Range": "bytes=3-5"}, timeout=10)
    assert response.status_code == 206
    assert response.content == b"345"


def test_sha256_mismatch_is_refused_and_nothing_is_stored(s3, tmp_path):
    path = _write(tmp_path, "bad.txt", b"these are not the expected bytes")
    with pytest.raises(storage.ChecksumMismatch) as excinfo:
        storage.upload_file(path, "t/mismatch/bad.txt", expected_sha256="0" * 64)
    assert excinfo.value.http_status == 422
    with pytest.raises(storage.ObjectMissing):
        storage.head("t/mismatch/bad.txt")


def test_tampered_signature_is_refused_by_seaweedfs(s3, tmp_path):
    storage.upload_file(_write(tmp_path, "s.txt", b"secret weights"), "t/tamper/s.txt")
    url = urlparse(storage.presign_get("t/tamper/s.txt", ttl_s=60))
    query = parse_qs(url.query)
    signature = query["X-Amz-Signature"][0]
    query["X-Amz-Signature"] = [("0" if signature[0] != "0" else "1") + signature[1:]]
    tampered = urlunparse(url._replace(query=urlencode(query, doseq=True)))
    assert requests.get(tampered, timeout=10).status_code == 403


def test_link_for_another_key_with_a_valid_signature_is_refused(s3, tmp_path):
    storage.upload_file(_write(tmp_path, "a.txt", b"public"), "t/swap/a.txt")
    storage.upload_file(_write(tmp_path, "b.txt", b"private"), "t/swap/b.txt")
    url = storage.presign_get("t/swap/a.txt", ttl_s=60)
    assert requests.get(url.replace("/t/swap/a.txt", "/t/swap/b.txt"), timeout=10).status_code == 403


def test_expired_link_is_refused_by_seaweedfs(s3, tmp_path):
    storage.upload_file(_write(tmp_path, "e.txt", b"short-lived"), "t/expire/e.txt")
    url = storage.presign_get("t/expire/e.txt", ttl_s=1)
    assert requests.get(url, timeout=10).status_code == 200
    time.sleep(2.5)
    assert requests.get(url, timeout=10).status_code == 403


def test_unsigned_get_is_refused(s3, tmp_path):
    storage.upload_file(_write(tmp_path, "u.txt", b"private"), "t/unsigned/u.txt")
    response = requests.get(f"{s3.endpoint_url}/{s3.bucket}/t/unsigned/u.txt", timeout=10)
    assert response.status_code == 403


def test_ttl_above_an_hour_is_refused(s3):
    with pytest.raises(ValueError, match="ttl_s"):
        storage.presign_get("t/any", ttl_s=storage.LINK_TTL_MAX_S + 1)


def test_delete_removes_the_object(s3, tmp_path):
    storage.upload_file(_write(tmp_path, "d.txt", b"gone soon"), "t/delete/d.txt")
    storage.delete("t/delete/d.txt")
    with pytest.raises(storage.ObjectMissing):
        storage.head("t/delete/d.txt")


def test_download_file_checks_the_recorded_sha256(s3, tmp_path):
    storage.upload_file(_write(tmp_path, "c.txt", b"checked"), "t/download/c.txt")
    stored = storage.download_file("t/download/c.txt", tmp_path / "out" / "c.txt")
    assert (tmp_path / "out" / "c.txt").read_bytes() == b"checked"
    assert stored.sha256 == hashlib.sha256(b"checked").hexdigest()


def test_unreachable_s3_is_a_clear_503_error(settings, tmp_path):
    from devstack.procs import free_port

    settings.S3_ENDPOINT_URL = f"http://127.0.0.1:{free_port()}"
    settings.S3_ACCESS_KEY_ID, settings.S3_SECRET_ACCESS_KEY = "AK", "SK"
    settings.S3_CONNECT_TIMEOUT_S = 1
    with pytest.raises(storage.StorageUnavailable) as excinfo:
        storage.head("t/anything")
    assert excinfo.value.http_status == 503
    assert "unreachable" in excinfo.value.message
    with pytest.raises(storage.StorageUnavailable):
        storage.upload_file(_write(tmp_path, "x.txt", b"x"), "t/x.txt")
