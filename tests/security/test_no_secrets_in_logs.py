"""Run the flows that handle secrets — link issuance, token auth, stage changes, portal login — with every
log record captured, and find none of the secrets in them: no S3 signature, no token key, no Authorization
header value, no password.
"""

import logging

import pytest
import requests

from releases.governance import stage_requests
from tests.releases.conftest import make_grant, make_partner, publish_terms, request_change, token_for, upload

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

LOGGERS = ["", "botocore", "boto3", "urllib3", "django", "django.request", "django.server", "celery", "knox",
           "axes"]


@pytest.fixture
def captured(caplog):
    """Every record at DEBUG on the root and the loggers that see requests; levels set in LOGGING stay as
    configured (that botocore stays at WARNING is part of what is tested)."""
    caplog.set_level(logging.DEBUG)
    for name in LOGGERS[5:]:
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def _all_text(caplog) -> str:
    lines = []
    for record in caplog.records:
        lines.append(record.getMessage())
        lines.append(repr(record.args))
        lines.append(repr(getattr(record, "request", "")))
        if record.exc_text:
            lines.append(record.exc_text)
    return "\n".join(lines)


def test_link_token_and_stage_flows_log_no_secrets(api, s3, size, alice, bob, carol, pat, tmp_path, captured):
    upload(size, tmp_path)
    partner = make_partner(alice, pat)
    publish_terms(alice, "v1", pat)
    make_grant(partner, size, alice)
    # The stage flow through the API: alice requests, bob approves.
    api.force_authenticate(alice)
    created = request_change(size, alice, "partners")
    api.force_authenticate(bob)
    assert api.post(f"/api/v1/stage-requests/{created.pk}/approve/", {}, format="json").status_code == 200
    api.force_authenticate(None)

    key = token_for(pat)
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    link = api.post(f"/api/v1/models/{size.slug}/files/model.safetensors/link/")
    assert link.status_code == 200, link.json()
    url = link.json()["url"]
    assert "X-Amz-Signature=" in url
    assert requests.get(url, timeout=10).status_code == 200
    redirect = api.get(f"/api/v1/models/{size.slug}/files/model.safetensors")
    assert redirect.status_code == 302
    # Refusals are logged by django.request (4xx warnings): a bad token and a refused file.
    api.credentials(HTTP_AUTHORIZATION=f"Token {key[:-4]}dead")
    assert api.post(f"/api/v1/models/{size.slug}/files/model.safetensors/link/").status_code == 401
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert api.post(f"/api/v1/models/{size.slug}/files/nope.bin/link/").status_code == 404
    # A portal login with a wrong then the right password.
    from django.test import Client

    portal = Client()
    portal.post("/portal/login/", {"username": "pat", "password": "wrong-password-123"})
    portal.post("/portal/login/", {"username": "pat", "password": "pw-pat"})
    # A second stage flow straight through the services.
    second = request_change(size, alice, "public")
    stage_requests.stage_request_approve(request=second, approver=bob)
    stage_requests.stage_request_approve(request=second, approver=carol)

    text = _all_text(captured)
    assert any(r.name == "django.request" for r in captured.records), "the capture missed django.request"
    signature = url.split("X-Amz-Signature=")[1].split("&")[0]
    for secret in ("X-Amz-Signature", signature, key, key[:-4], "Authorization", "wrong-password-123", "pw-pat",
                   s3.secret_key):
        assert secret not in text, f"{secret[:12]}… appears in the logs"
