"""Webhook receivers registered in the admin (issue #20): where they may point, which events they get, each
signed with its own secret and a signed timestamp, and a delivery log (a real loopback receiver here)."""

import hashlib
import hmac
import json
import re
import time

import pytest
from django.test import Client
from django.utils import timezone

from releases.access import grants, tokens
from releases.models import AuditEvent, OutboxMessage, WebhookSubscription
from releases.outbox.delivery import dispatch_due
from releases.outbox.webhook_urls import WebhookUrlRefused, webhook_url_check
from releases.stage_names import Stage
from tests.http_stub import QuietHandler, loopback_server
from tests.releases.conftest import make_partner, move, request_change

pytestmark = pytest.mark.django_db


@pytest.fixture
def receiver(settings):
    received: list[dict] = []

    class Handler(QuietHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append({"body": body, "event": self.headers["X-Stagegate-Event"],
                             "timed": self.headers["X-Stagegate-Signature-Timed"]})
            self.send_response(204)
            self.end_headers()

    with loopback_server(Handler) as base:
        settings.STAGEGATE_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
        yield f"{base}/hooks", received


def _verify(secret: str, hook: dict, *, max_age_s: int = 300) -> dict:
    """What a receiver does: check the signed time is recent and the signature over it and the body."""
    fields = dict(part.split("=", 1) for part in hook["timed"].split(","))
    assert abs(time.time() - int(fields["t"])) <= max_age_s
    expected = hmac.new(secret.encode(), f"{fields['t']}.".encode() + hook["body"], hashlib.sha256).hexdigest()
    assert hmac.compare_digest(fields["v1"], expected)
    return json.loads(hook["body"])


@pytest.mark.parametrize("url", ["http://example.org/hook", "https://127.0.0.1/hook", "https://10.1.2.3/hook",
                                 "https://localhost/hook", "https://[::1]/hook", "https://169.254.169.254/latest",
                                 "ftp://example.org/x", "https:///nohost"])
def test_a_receiver_must_be_https_on_a_public_address_unless_the_operator_allows_the_host(url):
    with pytest.raises(WebhookUrlRefused):
        webhook_url_check(url)


def test_allowed_hosts_may_use_http_and_private_addresses(settings):
    settings.STAGEGATE_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1", "hooks.internal"]
    webhook_url_check("http://127.0.0.1:8080/hook")
    webhook_url_check("http://hooks.internal/hook")


def test_policy_staff_register_a_receiver_that_gets_its_events_signed_with_its_own_secret(
        receiver, alice, bob, pat, size, steve):
    url, received = receiver
    staff = Client()
    staff.force_login(alice)
    answer = staff.post("/admin/releases/webhooksubscription/add/", {
        "name": "SOC", "url": url, "events": ["access_request", "token"], "active": "on"}, follow=True)
    subscription = WebhookSubscription.objects.get()
    secret = re.search(r"shown once: <code>([0-9a-f]{64})</code>", answer.content.decode()).group(1)
    assert secret == subscription.secret and AuditEvent.objects.filter(action="webhook.created").exists()
    # Events of the kinds it chose reach it; stage events (not chosen) do not.
    move(size, Stage.PARTNERS, requester=alice, approvers=[bob])
    make_partner(alice, pat)
    grants.access_request_create(user=pat, size=size, purpose="Red-teaming.")
    tokens.token_create(user=pat, name="laptop", expires_days=7, actor=pat)
    dispatch_due()
    assert [hook["event"] for hook in received] == ["access_request.created", "token.created"]
    bodies = [_verify(secret, hook) for hook in received]
    assert bodies[0]["model"] == size.slug and bodies[1]["user"] == "pat"
    tampered = {**received[0], "body": received[0]["body"].replace(size.slug.encode(), b"mini-9m")}
    with pytest.raises(AssertionError):
        _verify(secret, tampered)
    page = staff.get(f"/admin/releases/webhooksubscription/{subscription.pk}/change/").content.decode()
    assert "access_request.created" in page and "token.created" in page  # the delivery log
    refused = Client()
    refused.force_login(steve)
    assert refused.get("/admin/releases/webhooksubscription/add/").status_code == 403


def test_the_form_refuses_a_private_address_and_delivery_checks_again(receiver, alice, settings, size):
    url, received = receiver
    staff = Client()
    staff.force_login(alice)
    settings.STAGEGATE_WEBHOOK_ALLOWED_HOSTS = []
    page = staff.post("/admin/releases/webhooksubscription/add/", {
        "name": "Internal", "url": url, "events": ["stage"], "active": "on"})
    assert page.status_code == 200 and "allowed_hosts" in page.content.decode().lower()
    assert not WebhookSubscription.objects.exists()
    # Registered while allowed, then the operator takes the host off the list: nothing is sent there.
    settings.STAGEGATE_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    staff.post("/admin/releases/webhooksubscription/add/", {"name": "Internal", "url": url, "events": ["stage"],
                                                             "active": "on"})
    settings.STAGEGATE_WEBHOOK_ALLOWED_HOSTS = []
    request_change(size, alice, Stage.PARTNERS)
    dispatch_due()
    assert received == []
    message = OutboxMessage.objects.get(subscription__isnull=False)
    assert message.sent_at is None and "WebhookUrlRefused" in message.last_error


@pytest.mark.parametrize("address", ["::ffff:127.0.0.1", "64:ff9b::a9fe:a9fe", "2002:7f00:1::1", "::7f00:1"])
def test_ipv6_forms_that_carry_a_private_ipv4_address_are_private(address):
    from releases.outbox.webhook_urls import _public

    assert not _public(address)
    assert _public("2606:4700:4700::1111") and _public("1.1.1.1")


@pytest.mark.parametrize("url", ["https://example.org:8443/hook", "https://example.org:99999/hook"])
def test_only_port_443_and_a_bad_port_is_a_refusal_not_a_crash(url):
    with pytest.raises(WebhookUrlRefused):
        webhook_url_check(url)


def test_a_deactivated_or_repointed_receiver_gets_nothing_at_its_old_address(receiver, alice, size):
    url, received = receiver
    subscription = WebhookSubscription.objects.create(name="SOC", url=url, secret="s" * 64, events=["stage"],
                                                      created_by=alice)
    request_change(size, alice, Stage.PARTNERS)
    subscription.active = False
    subscription.save()
    dispatch_due()
    assert received == []
    assert "deactivated" in OutboxMessage.objects.get(subscription=subscription).last_error
    subscription.active, subscription.url = True, url.replace("/hooks", "/elsewhere")
    subscription.save()
    OutboxMessage.objects.filter(subscription=subscription).update(next_attempt_at=timezone.now())
    dispatch_due()
    assert len(received) == 1  # sent to the receiver's current URL (same server, other path)


def test_sending_a_message_again_needs_the_webhook_role_and_is_audited(alice, steve, role_groups):
    """Reading the outbox (view permission) was enough to resend anything, and nothing recorded who did."""
    from django.contrib.auth.models import Permission

    message = OutboxMessage.objects.create(channel=OutboxMessage.Channel.WEBHOOK, event="grant.created",
                                           url="https://receiver.example/hook", body="{}",
                                           next_attempt_at=timezone.now(), sent_at=timezone.now())
    steve.user_permissions.add(Permission.objects.get(codename="view_outboxmessage"))
    reader = Client()
    reader.force_login(steve)
    form = {"action": "send_again", "_selected_action": [message.pk]}
    reader.post("/admin/releases/outboxmessage/", form)
    assert OutboxMessage.objects.get(pk=message.pk).sent_at is not None
    assert not AuditEvent.objects.filter(action="outbox.sent_again").exists()
    staff = Client()
    staff.force_login(alice)
    assert staff.post("/admin/releases/outboxmessage/", form).status_code == 302
    assert OutboxMessage.objects.get(pk=message.pk).sent_at is None
    resent = AuditEvent.objects.get(action="outbox.sent_again")
    assert resent.actor_label == "alice" and resent.data["uid"] == str(message.uid)
