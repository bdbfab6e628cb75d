"""Signed links on the real, signature-checking SeaweedFS: what they fetch, how they end, what is recorded."""

import hashlib
import json
import time
from urllib.parse import parse_qs, urlencode, urlparse, urlunparse

import pytest
import requests

from releases.access import grants
from releases.models import AuditEvent, IssuedLink
from tests.releases.conftest import WEIGHTS, make_grant, make_partner, move, publish_terms, token_for, upload

pytestmark = pytest.mark.integration


@pytest.fixture
def granted(api, s3, size, alice, bob, pat, tmp_path):
    """pat's Example Security Lab holds an active grant for the size, which is at the partners stage."""
    artifact = upload(size, tmp_path)
    partner = make_partner(alice, pat)
    publish_terms(alice, "v1", pat)
    grant = make_grant(partner, size, alice)
    move(size, "partners", requester=alice, approvers=[bob])
    api.credentials(HTTP_AUTHORIZATION=f"Token {token_for(pat)}")
    return {"artifact": artifact, "partner": partner, "grant": grant}


def _link(api, size, filename="model.safetensors"):
    return api.post(f"/api/v1/models/{size.slug}/files/{filename}/link/")


def test_an_issued_link_downloads_the_bytes_as_an_attachment(api, size, granted):
    response = _link(api, size)
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert set(body) == {"url", "expires_at", "bytes", "sha256", "revision"}
    assert body["revision"] == granted["artifact"].revision.revision
    download = requests.get(body["url"], timeout=10)
    assert download.status_code == 200
    assert download.content == WEIGHTS
    assert hashlib.sha256(download.content).hexdigest() == body["sha256"] == granted["artifact"].sha256
    assert download.headers["Content-Disposition"] == 'attachment; filename="model.safetensors"'


def test_a_tampered_link_is_refused_by_seaweedfs(api, size, granted):
    url = urlparse(_link(api, size).json()["url"])
    query = parse_qs(url.query)
    signature = query["X-Amz-Signature"][0]
    query["X-Amz-Signature"] = [("0" if signature[0] != "0" else "1") + signature[1:]]
    assert requests.get(urlunparse(url._replace(query=urlencode(query, doseq=True))), timeout=10).status_code == 403
    # Stretching the expiry invalidates the signature too.
    query = parse_qs(url.query)
    query["X-Amz-Expires"] = ["3600"]
    assert requests.get(urlunparse(url._replace(query=urlencode(query, doseq=True))), timeout=10).status_code == 403


def test_an_expired_link_is_refused_by_seaweedfs_and_asking_again_gives_a_working_one(api, size, granted, settings):
    settings.STAGEGATE_LINK_TTL_S = 1
    old = _link(api, size).json()["url"]
    time.sleep(2.5)
    assert requests.get(old, timeout=10).status_code == 403
    # The new link with a longer life: a 1 s one can expire before the GET on a loaded 2-core machine (it did).
    settings.STAGEGATE_LINK_TTL_S = 60
    fresh = _link(api, size).json()["url"]
    assert requests.get(fresh, timeout=10).content == WEIGHTS


def test_the_ttl_defaults_to_ten_minutes_and_is_never_above_an_hour(api, size, granted, settings):
    del settings.STAGEGATE_LINK_TTL_S
    _link(api, size)
    link = IssuedLink.objects.get()
    assert (link.expires_at - link.issued_at).total_seconds() == 600
    settings.STAGEGATE_LINK_TTL_S = 24 * 3600
    url = _link(api, size).json()["url"]
    assert parse_qs(urlparse(url).query)["X-Amz-Expires"] == ["3600"]
    latest = IssuedLink.objects.order_by("-id").first()
    assert (latest.expires_at - latest.issued_at).total_seconds() == 3600


def test_the_file_endpoint_redirects_to_a_fresh_link(api, size, granted):
    response = api.get(f"/api/v1/models/{size.slug}/files/model.safetensors")
    assert response.status_code == 302
    assert requests.get(response["Location"], timeout=10).content == WEIGHTS


def test_every_link_is_an_audit_row_without_the_signature(api, size, granted, pat):
    api.post(f"/api/v1/models/{size.slug}/files/model.safetensors/link/", REMOTE_ADDR="203.0.113.7")
    link = IssuedLink.objects.get()
    event = AuditEvent.objects.get(action="link.issued")
    assert event.actor_label == "pat"
    assert event.ip == "203.0.113.7" == link.ip
    assert event.data["partner"] == "Example Security Lab"
    assert event.data["grant_id"] == granted["grant"].pk == link.grant_id
    assert event.data["terms_version"] == "v1"
    assert event.data["file"] == "model.safetensors"
    assert event.data["expires_at"] == link.expires_at.isoformat()
    everything = json.dumps([list(e.values()) for e in AuditEvent.objects.values()], default=str)
    assert "X-Amz-Signature" not in everything and "Signature" not in everything


def test_unknown_files_are_404(api, size, granted):
    response = _link(api, size, "nope.safetensors")
    assert response.status_code == 404
    assert response.json()["error"] == "file_not_found"
    assert IssuedLink.objects.count() == 0


def test_callers_who_may_not_have_a_file_never_make_the_platform_ask_storage(
        api, s3, size, alice, bob, pat, rita, tmp_path, monkeypatch):
    # Asking storage for a refused caller would let its timing tell them which files exist.
    upload(size, tmp_path)
    from registry import storage

    def no_storage(*args, **kwargs):
        raise AssertionError("storage was asked on behalf of a caller who may not have the file")

    monkeypatch.setattr(storage, "head", no_storage)
    monkeypatch.setattr(storage, "presign_get", no_storage)
    api.credentials(HTTP_AUTHORIZATION=f"Token {token_for(rita)}")
    for filename in ("model.safetensors", "nothing-here.bin", "-x"):  # internal: as if there were no size
        assert _link(api, size, filename).json()["error"] == "model_size_not_found"
    make_partner(alice, pat)
    move(size, "partners", requester=alice, approvers=[bob])
    assert _link(api, size).json()["error"] == "not_a_partner"
    api.credentials(HTTP_AUTHORIZATION=f"Token {token_for(pat)}")
    assert _link(api, size).json()["error"] == "no_grant"
    api.credentials()
    assert _link(api, size).json()["error"] == "not_authenticated"
    assert not IssuedLink.objects.exists()


def test_storage_unreachable_is_503_and_nothing_is_recorded(api, size, granted, settings):
    settings.S3_ENDPOINT_URL = "http://127.0.0.1:9"  # discard port: nothing listens
    settings.S3_CONNECT_TIMEOUT_S = 1
    before = AuditEvent.objects.count()
    response = _link(api, size)
    assert response.status_code == 503
    assert response.json()["error"] == "storage_unavailable"
    assert IssuedLink.objects.count() == 0
    assert AuditEvent.objects.count() == before


def test_a_storage_check_vouches_for_the_file_for_its_window_only(api, size, granted, settings, monkeypatch):
    from types import SimpleNamespace

    from registry import storage

    clock = [1000.0]
    monkeypatch.setattr(storage, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    heads, outage = [], [False]
    real_head = storage.head

    def head(key):
        heads.append(key)
        if outage[0]:
            raise storage.StorageUnavailable("Object storage is unreachable (simulated).")
        return real_head(key)

    monkeypatch.setattr(storage, "head", head)
    settings.STAGEGATE_STORAGE_CHECK_WINDOW_MS = 1000
    assert _link(api, size).status_code == 200
    clock[0] += 0.999
    assert _link(api, size).status_code == 200
    assert len(heads) == 1  # the second link came within the window
    clock[0] += 0.002
    assert _link(api, size).status_code == 200
    assert len(heads) == 2  # the window had passed: storage was asked again
    # An outage is answered within the window's length, and failures are not remembered: every link asks.
    outage[0] = True
    assert _link(api, size).status_code == 200  # still vouched for by the check just made
    clock[0] += 1.0
    assert [_link(api, size).status_code for _ in range(2)] == [503, 503]
    assert len(heads) == 4
    outage[0] = False
    assert _link(api, size).status_code == 200
    assert len(heads) == 5
    assert IssuedLink.objects.count() == 5
    # Checking every link, on request.
    settings.STAGEGATE_STORAGE_CHECK_WINDOW_MS = 0
    assert [_link(api, size).status_code for _ in range(2)] == [200, 200]
    assert len(heads) == 7


def test_quota_exhausted_is_429_with_retry_after_and_counts_per_file(api, s3, size, alice, bob, pat, tmp_path):
    upload(size, tmp_path)
    upload(size, tmp_path, "config.json", b"{}")
    partner = make_partner(alice, pat)
    publish_terms(alice, "v1", pat)
    make_grant(partner, size, alice, quota_links=2, quota_period_s=3600)
    move(size, "partners", requester=alice, approvers=[bob])
    api.credentials(HTTP_AUTHORIZATION=f"Token {token_for(pat)}")
    assert [_link(api, size).status_code for _ in range(2)] == [200, 200]
    refused = _link(api, size)
    assert refused.status_code == 429
    assert refused.json()["error"] == "quota_exhausted"
    assert 3590 <= int(refused["Retry-After"]) <= 3600
    assert refused.json()["retry_after_s"] == int(refused["Retry-After"])
    assert _link(api, size, "config.json").status_code == 200  # the quota is per file
    manifest = api.get(f"/api/v1/models/{size.slug}/manifest/").json()
    quotas = {f["filename"]: f["quota"] for f in manifest["files"]}
    assert quotas["model.safetensors"]["remaining"] == 0 and quotas["model.safetensors"]["used"] == 2
    assert quotas["config.json"] == {"limit": 2, "period_s": 3600, "used": 1, "remaining": 1,
                                     "retry_after_s": 0}
    assert IssuedLink.objects.count() == 3


def test_revoking_stops_new_links_at_once_while_issued_links_live_to_their_expiry(api, size, granted, alice):
    issued = _link(api, size).json()["url"]
    grants.grant_revoke(grant=granted["grant"], actor=alice, reason="Agreement ended.")
    refused = _link(api, size)
    assert refused.status_code == 403
    assert refused.json()["error"] == "grant_revoked"
    assert "Agreement ended." in refused.json()["detail"]
    assert requests.get(issued, timeout=10).status_code == 200


def test_withdrawing_stops_new_links_for_partners_but_not_staff(api, size, granted, alice, bob, carol):
    move(size, "withdrawn", requester=alice, approvers=[bob])
    refused = _link(api, size)
    assert (refused.status_code, refused.json()["error"]) == (403, "withdrawn")
    api.credentials(HTTP_AUTHORIZATION=f"Token {token_for(carol)}")
    assert _link(api, size).status_code == 200
    assert IssuedLink.objects.get().basis == "staff"


def test_the_manifest_names_the_stage_and_the_callers_grant(api, size, granted):
    manifest = api.get(f"/api/v1/models/{size.slug}/manifest/").json()
    assert manifest["stage"] == "partners"
    assert manifest["access"] == {"basis": "grant", "detail": manifest["access"]["detail"], "terms_version": "v1"}
    assert manifest["grant"]["id"] == granted["grant"].pk
    assert manifest["grant"]["partner"] == "Example Security Lab"
    assert manifest["link_ttl_s"] == 600
    assert manifest["files"] == [{"filename": "model.safetensors", "bytes": len(WEIGHTS),
                                  "sha256": hashlib.sha256(WEIGHTS).hexdigest(), "format": "safetensors",
                                  "quota": None}]


def test_public_sizes_need_no_account_and_links_are_recorded_as_anonymous(api, s3, size, alice, bob, carol, tmp_path):
    upload(size, tmp_path)
    move(size, "public", requester=alice, approvers=[bob, carol])
    response = _link(api, size)
    assert response.status_code == 200
    link = IssuedLink.objects.get()
    assert (link.user, link.basis, link.grant) == (None, "public", None)
    assert AuditEvent.objects.get(action="link.issued").data["anonymous"] is True


def test_anonymous_links_to_public_sizes_are_rate_limited_per_client(api, s3, size, alice, bob, carol, pat,
                                                                     tmp_path, settings):
    """Each anonymous link writes a permanent audit row, so their rate is bounded: 429 with Retry-After."""
    settings.STAGEGATE_LINK_RATE_ANON = "2/min"
    upload(size, tmp_path)
    move(size, "public", requester=alice, approvers=[bob, carol])
    assert _link(api, size).status_code == 200
    assert api.get(f"/api/v1/models/{size.slug}/files/model.safetensors").status_code == 302
    refused = _link(api, size)
    assert refused.status_code == 429 and refused.json()["error"] == "rate_limited"
    assert int(refused["Retry-After"]) >= 1
    assert IssuedLink.objects.count() == 2
    assert api.post(f"/api/v1/models/{size.slug}/files/model.safetensors/link/",
                    REMOTE_ADDR="203.0.113.50").status_code == 200  # another client
    api.credentials(HTTP_AUTHORIZATION=f"Token {token_for(pat)}")
    signed_in = _link(api, size)
    assert signed_in.status_code == 200, signed_in.content  # bounded by grants and roles, not this limit
