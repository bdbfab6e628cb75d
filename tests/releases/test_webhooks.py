"""Stage events are POSTed, HMAC-signed, to the configured URLs (a real loopback HTTP server here)."""

import hashlib
import hmac
import json

import pytest

from releases.governance import stage_requests
from releases.outbox.delivery import dispatch_due, webhook_signature
from releases.stage_names import Stage
from tests.http_stub import QuietHandler, loopback_server
from tests.releases.conftest import request_change

SECRET = "webhook-test-secret"


@pytest.fixture
def receiver():
    received: list[dict] = []

    class Handler(QuietHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append({"body": body, "signature": self.headers["X-Stagegate-Signature"],
                             "event": self.headers["X-Stagegate-Event"]})
            self.send_response(204)
            self.end_headers()

    with loopback_server(Handler) as base:
        yield f"{base}/hooks/stagegate", received


def test_stage_events_are_delivered_with_a_valid_signature(receiver, settings, size, alice, bob):
    url, received = receiver
    settings.STAGEGATE_WEBHOOK_URLS = [url]
    settings.STAGEGATE_WEBHOOK_SECRET = SECRET
    request = request_change(size, alice, Stage.PARTNERS, public_rationale="Shared with partners.")
    stage_requests.stage_request_approve(request=request, approver=bob)
    dispatch_due()
    assert [hook["event"] for hook in received] == ["stage_request.created", "stage_request.approved",
                                                    "stage.applied"]
    for hook in received:
        expected = "sha256=" + hmac.new(SECRET.encode(), hook["body"], hashlib.sha256).hexdigest()
        assert hmac.compare_digest(hook["signature"], expected)
    applied = json.loads(received[-1]["body"])
    assert (applied["model"], applied["from_stage"], applied["to_stage"]) == (size.slug, "internal", "partners")
    assert applied["public_rationale"] == "Shared with partners."
    assert "rationale" not in applied  # the internal rationale never leaves the platform


def test_a_signature_changes_with_the_body():
    assert webhook_signature(b'{"a":1}', SECRET) != webhook_signature(b'{"a":2}', SECRET)


def test_no_webhooks_without_a_secret(receiver, settings, size, alice):
    url, received = receiver
    settings.STAGEGATE_WEBHOOK_URLS = [url]
    settings.STAGEGATE_WEBHOOK_SECRET = ""
    request_change(size, alice, Stage.PARTNERS)
    dispatch_due()
    assert received == []
