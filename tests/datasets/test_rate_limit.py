"""Anonymous callers are limited per IP; signed-in researchers get a higher limit; 429 says when to retry."""

import pytest

from tests.releases.conftest import token_for

pytestmark = pytest.mark.integration


@pytest.fixture
def low_rates(settings):
    settings.STAGEGATE_DATASET_RATE_ANON = "3/min"
    settings.STAGEGATE_DATASET_RATE_USER = "6/min"


def test_anonymous_callers_get_429_with_retry_after(api, datasets, low_rates):
    for _ in range(3):
        assert api.get("/api/v1/datasets/").status_code == 200
    response = api.get("/api/v1/datasets/mini-1m/")
    assert response.status_code == 429
    assert response.json()["error"] == "rate_limited"
    assert 1 <= int(response["Retry-After"]) <= 60


def test_the_compat_path_and_links_count_against_the_same_limit(api, datasets, low_rates):
    assert api.get("/gpt-2/output-dataset/v1/mini-1m.valid.jsonl").status_code == 302
    assert api.post("/api/v1/datasets/mini-1m/valid/link/").status_code == 200
    assert api.get("/api/v1/datasets/").status_code == 200
    assert api.get("/gpt-2/output-dataset/v1/mini-1m.valid.jsonl").status_code == 429


def test_the_limit_is_per_ip_and_forwarded_headers_do_not_dodge_it(api, datasets, low_rates):
    for _ in range(3):
        api.get("/api/v1/datasets/")
    assert api.get("/api/v1/datasets/", HTTP_X_FORWARDED_FOR="10.9.9.9").status_code == 429
    assert api.get("/api/v1/datasets/", REMOTE_ADDR="10.0.0.2").status_code == 200


def test_signed_in_researchers_get_the_higher_limit(api, datasets, low_rates, rita):
    api.credentials(HTTP_AUTHORIZATION=f"Token {token_for(rita)}")
    for _ in range(6):
        assert api.get("/api/v1/datasets/").status_code == 200
    assert api.get("/api/v1/datasets/").status_code == 429


def test_an_unreachable_cache_lets_requests_through(api, datasets, low_rates, settings):
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:9/0"}}
    for _ in range(5):
        assert api.get("/api/v1/datasets/").status_code == 200


def test_behind_a_trusted_proxy_each_client_has_its_own_limit(api, datasets, low_rates, settings):
    settings.STAGEGATE_TRUSTED_PROXIES = ["10.0.0.0/24"]
    behind = {"REMOTE_ADDR": "10.0.0.5"}
    for _ in range(3):
        assert api.get("/api/v1/datasets/", HTTP_X_FORWARDED_FOR="198.51.100.1", **behind).status_code == 200
    assert api.get("/api/v1/datasets/", HTTP_X_FORWARDED_FOR="198.51.100.1", **behind).status_code == 429
    assert api.get("/api/v1/datasets/", HTTP_X_FORWARDED_FOR="198.51.100.2", **behind).status_code == 200
    # A client cannot dodge its limit by prepending an address of its choosing.
    spoofed = "203.0.113.9, 198.51.100.1"
    assert api.get("/api/v1/datasets/", HTTP_X_FORWARDED_FOR=spoofed, **behind).status_code == 429
