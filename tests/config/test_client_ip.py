"""The one client-IP function behind a proxy: believed hops only, IPv6 by /64 for limits and lockouts; and what
follows from it for the lockout, the rate limits and the audit trail."""

import pytest
from django.test import Client, RequestFactory

from config.client_ip import client_ip, client_key

PROXY = "10.0.0.5"


@pytest.fixture
def behind_proxy(settings):
    settings.STAGEGATE_TRUSTED_PROXIES = ["10.0.0.0/24"]


def _request(remote: str, forwarded: str | None = None):
    extra = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded is not None else {}
    return RequestFactory().get("/", REMOTE_ADDR=remote, **extra)


def test_without_trusted_proxies_the_header_is_ignored(settings):
    settings.STAGEGATE_TRUSTED_PROXIES = []
    assert client_ip(_request("203.0.113.7", "198.51.100.1")) == "203.0.113.7"


def test_through_a_trusted_proxy_the_client_is_the_address_it_appended(behind_proxy):
    assert client_ip(_request(PROXY, "198.51.100.1")) == "198.51.100.1"


def test_a_spoofed_left_part_of_the_header_is_not_believed(behind_proxy):
    assert client_ip(_request(PROXY, "6.6.6.6, 198.51.100.1")) == "198.51.100.1"


def test_a_chain_of_trusted_proxies_is_walked_to_the_first_untrusted_hop(behind_proxy):
    assert client_ip(_request(PROXY, "198.51.100.1, 10.0.0.9")) == "198.51.100.1"


def test_an_untrusted_peer_cannot_claim_another_address(behind_proxy):
    assert client_ip(_request("203.0.113.7", "198.51.100.1")) == "203.0.113.7"


def test_garbage_in_the_header_stops_the_walk_at_the_last_believed_hop(behind_proxy):
    assert client_ip(_request(PROXY, "not-an-address")) == PROXY
    assert client_ip(_request(PROXY, "\x00, 198.51.100.1")) == "198.51.100.1"


def test_ipv6_clients_are_counted_by_64_but_recorded_in_full(behind_proxy):
    one, other = "2001:db8:1:2:aaaa::1", "2001:db8:1:2:bbbb::2"
    assert client_key(_request(PROXY, one)) == client_key(_request(PROXY, other)) == "2001:db8:1:2::"
    assert client_key(_request(PROXY, "2001:db8:1:3::1")) != client_key(_request(PROXY, one))
    assert client_ip(_request(PROXY, one)) == one
    assert client_key(_request("198.51.100.1")) == "198.51.100.1"
    assert client_ip(_request("::ffff:198.51.100.1")) == "198.51.100.1"


@pytest.mark.django_db
def test_a_lockout_behind_the_proxy_locks_out_only_the_client_who_failed(behind_proxy, alice, settings):
    from axes.models import AccessAttempt

    AccessAttempt.objects.all().delete()
    attacker = Client(REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR="198.51.100.66")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        attacker.post("/portal/login/", {"username": "alice", "password": "wrong"})
    assert attacker.post("/portal/login/", {"username": "alice", "password": "pw-alice"}).status_code == 429
    alice_at_home = Client(REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR="198.51.100.1")
    assert alice_at_home.post("/portal/login/", {"username": "alice", "password": "pw-alice"}).status_code == 302


@pytest.mark.django_db
def test_audit_rows_record_the_client_behind_the_proxy(behind_proxy, size, alice, dora, api):
    from releases.models import AuditEvent
    from tests.releases.conftest import ALL_FACTORS, RATIONALE, token_for

    api.credentials(HTTP_AUTHORIZATION=f"Token {token_for(dora)}")
    response = api.post(f"/api/v1/models/{size.slug}/stage-requests/",
                        {"to_stage": "partners", "rationale": RATIONALE, "factors": ALL_FACTORS}, format="json",
                        REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR="198.51.100.23")
    assert response.status_code == 201, response.content
    assert AuditEvent.objects.get(action="stage_request.created").ip == "198.51.100.23"
