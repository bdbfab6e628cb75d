"""Notifications leave through the outbox: a committed decision never waits on, fails with or loses a notice,
whatever the broker or the mail server are doing; a webhook keeps its id across redeliveries."""

import json
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from devstack.procs import free_port
from releases.governance import stage_requests
from releases.outbox.delivery import dispatch_due
from releases.outbox.models import OutboxMessage
from releases.stage_names import Stage
from tests.http_stub import QuietHandler, loopback_server
from tests.releases.conftest import ALL_FACTORS, RATIONALE, request_change, token_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def smtp_down(settings):
    """A real SMTP client pointed at a port nobody listens on."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", free_port(), 2


@pytest.fixture
def receiver():
    """A webhook receiver that fails its first `fail` deliveries, then accepts; records every delivery."""
    state = {"fail": 0, "seen": []}

    class Handler(QuietHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state["seen"].append({"body": json.loads(body), "delivery": self.headers["X-Stagegate-Delivery"]})
            failing = state["fail"] > 0
            state["fail"] -= failing
            self.send_response(500 if failing else 204)
            self.end_headers()

    with loopback_server(Handler) as base:
        yield f"{base}/hook", state


def test_a_decision_commits_and_answers_while_the_broker_is_down(api, size, dora, broker_url):
    api.credentials(HTTP_AUTHORIZATION=f"Token {token_for(dora)}")
    with broker_url(f"redis://127.0.0.1:{free_port()}/0"):
        response = api.post(f"/api/v1/models/{size.slug}/stage-requests/",
                            {"to_stage": "partners", "rationale": RATIONALE, "factors": ALL_FACTORS}, format="json")
    assert response.status_code == 201
    assert OutboxMessage.objects.filter(event="stage_request.created", sent_at=None).exists()
    assert dispatch_due().sent >= 1  # once a dispatcher runs, it goes out
    assert any("requested by dora" in message.subject for message in mail.outbox)


def test_an_smtp_outage_delays_emails_and_holds_up_no_webhook(size, alice, settings, smtp_down, receiver):
    url, state = receiver
    settings.STAGEGATE_WEBHOOK_URLS, settings.STAGEGATE_WEBHOOK_SECRET = [url], "secret"
    request_change(size, alice, Stage.PARTNERS)
    report = dispatch_due()
    assert (report.sent, report.retrying) == (1, 1)  # the webhook went, the email waits
    email = OutboxMessage.objects.get(channel="email")
    assert email.sent_at is None and email.attempts == 1 and email.last_error
    assert email.next_attempt_at > timezone.now()
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"  # the mail server is back
    assert dispatch_due(now=email.next_attempt_at).sent == 1
    assert len(mail.outbox) == 1


def test_a_webhook_keeps_its_id_and_body_across_redeliveries(size, alice, settings, receiver):
    url, state = receiver
    settings.STAGEGATE_WEBHOOK_URLS, settings.STAGEGATE_WEBHOOK_SECRET = [url], "secret"
    state["fail"] = 2
    request_change(size, alice, Stage.PARTNERS)
    message = OutboxMessage.objects.get(channel="webhook")
    later = timezone.now()
    for _ in range(3):
        dispatch_due(now=later)
        later += timedelta(hours=1)
    assert len(state["seen"]) == 3
    assert {seen["body"]["id"] for seen in state["seen"]} == {str(message.uid)}
    assert {seen["delivery"] for seen in state["seen"]} == {str(message.uid)}
    message.refresh_from_db()
    assert message.sent_at is not None and message.attempts == 3


def test_a_message_is_sent_once_even_when_dispatchers_overlap(size, alice):
    request_change(size, alice, Stage.PARTNERS)
    now = timezone.now()
    assert dispatch_due(now=now).sent == 1
    assert dispatch_due(now=now).sent == 0
    assert len(mail.outbox) == 1


def test_an_undeliverable_message_is_kept_as_failed_after_the_give_up_time(size, alice, settings, smtp_down):
    request_change(size, alice, Stage.PARTNERS)
    message = OutboxMessage.objects.get()
    much_later = message.created_at + timedelta(hours=settings.STAGEGATE_OUTBOX_GIVE_UP_H)
    assert dispatch_due(now=much_later).failed == 1
    message.refresh_from_db()
    assert message.failed_at is not None and message.sent_at is None
    assert dispatch_due(now=much_later + timedelta(days=1)).sent == 0  # no longer tried, still on record


def test_a_rolled_back_decision_leaves_no_notice(size, alice):
    with pytest.raises(RuntimeError):
        from django.db import transaction

        with transaction.atomic():
            stage_requests.stage_request_create(size=size, requester=alice, to_stage="partners", rationale=RATIONALE,
                                                factors=ALL_FACTORS)
            raise RuntimeError("the caller's transaction fails after the request")
    assert not OutboxMessage.objects.exists()
