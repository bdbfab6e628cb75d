"""`/api/v1/tokens/`: a caller's own tokens, listed by public prefix, created for themself, revoked by them."""

import pytest
from knox.models import AuthToken

from releases.models import AuditEvent
from tests.releases.conftest import token_for

pytestmark = pytest.mark.django_db


def test_a_member_creates_lists_and_revokes_their_own_tokens(api, pat):
    api.credentials(HTTP_AUTHORIZATION=f"Token {token_for(pat)}")
    created = api.post("/api/v1/tokens/", {"name": "laptop", "expires_days": 7}, format="json")
    assert created.status_code == 201
    body = created.json()
    assert body["name"] == "laptop" and body["verified"] is False and len(body["key"]) > 20
    listed = api.get("/api/v1/tokens/").json()
    assert body["token_key"] in [t["token_key"] for t in listed]
    assert all("key" not in t for t in listed)  # a key is shown once, at creation
    assert api.post(f"/api/v1/tokens/{body['token_key']}/revoke/").status_code == 204
    assert not AuthToken.objects.filter(token_key=body["token_key"]).exists()
    assert AuditEvent.objects.filter(action="token.revoked", actor_label="pat").exists()


def test_nobody_revokes_or_sees_another_accounts_token(api, pat, rita):
    other = token_for(rita)
    rita_key = AuthToken.objects.get(user=rita).token_key
    api.credentials(HTTP_AUTHORIZATION=f"Token {token_for(pat)}")
    assert rita_key not in [t["token_key"] for t in api.get("/api/v1/tokens/").json()]
    assert api.post(f"/api/v1/tokens/{rita_key}/revoke/").status_code == 404
    api.credentials(HTTP_AUTHORIZATION=f"Token {other}")
    assert api.get("/api/v1/tokens/").status_code == 200  # still works


@pytest.mark.parametrize("body", [{"expires_days": 0}, {"expires_days": 400}, {"expires_days": "x"},
                                  {"name": "n" * 101}])
def test_bad_input_is_400_with_the_field_named(api, pat, body):
    api.force_authenticate(pat)
    response = api.post("/api/v1/tokens/", body, format="json")
    assert response.status_code == 400 and response.json()["error"] == "invalid"
    assert set(response.json()["fields"]) <= {"expires_days", "name"}


def test_anonymous_callers_get_401(api):
    assert api.get("/api/v1/tokens/").status_code == 401
    assert api.post("/api/v1/tokens/", {}, format="json").status_code == 401


def test_a_hostile_token_prefix_never_reaches_a_query(api, pat):
    api.force_authenticate(pat)
    assert api.post("/api/v1/tokens/ab%00cd/revoke/").status_code == 404
