"""Hostile input gets a 4xx, never a 5xx, on either database: NUL bytes in path segments and form fields,
non-numeric ids, wild pagination. Run on PostgreSQL with the suite and on SQLite (the demo's) by
scripts/test.sh."""

import pytest
from django.test import Client

from tests.releases.conftest import token_for

pytestmark = pytest.mark.django_db

NUL = "%00"


@pytest.mark.parametrize("path", [
    f"/api/v1/datasets/mini-1m/va{NUL}lid/link/",
    f"/api/v1/models/mini-1m/files/model{NUL}.safetensors/link/",
    f"/api/v1/models/mini-1m/files/model{NUL}.safetensors",
    f"/gpt-2/output-dataset/v1/mini-1m.va{NUL}lid.jsonl",
    f"/api/v1/tokens/ab{NUL}cd/revoke/",
    f"/api/v1/datasets/mini{NUL}1m/",
    f"/models/mini{NUL}1m/",
])
def test_a_nul_byte_in_a_path_is_a_4xx(api, size, pat, path):
    api.credentials(HTTP_AUTHORIZATION=f"Token {token_for(pat)}")
    for method in (api.get, api.post):
        status = method(path).status_code
        assert 400 <= status < 500, (path, status)


@pytest.mark.parametrize("query", ["limit=abc", "limit=-1", "offset=-5", "limit=99999999999999999999",
                                   f"offset={NUL}", "limit=1e9", f"status={NUL}", f"model={NUL}", "model=../x"])
def test_wild_pagination_and_filters_are_4xx_or_ignored(api, dora, query):
    api.credentials(HTTP_AUTHORIZATION=f"Token {token_for(dora)}")
    for path in ("/api/v1/models/", "/api/v1/datasets/", "/api/v1/stage-requests/", "/api/v1/jobs/",
                 "/api/v1/tokens/"):
        status = api.get(f"{path}?{query}").status_code
        assert status < 500, (path, query, status)


@pytest.mark.parametrize("value", ["abc", "1\x00", "-1", "99999999999999999999999", "", "1.5"])
def test_portal_forms_with_non_numeric_ids_answer_without_a_server_error(pat, value):
    client = Client()
    client.force_login(pat)
    for path, field in (("/portal/terms/accept/", "terms"), ("/portal/access-requests/", "model_size")):
        status = client.post(path, {field: value}).status_code
        assert status in (302, 404), (path, value, status)


def test_a_nul_byte_in_the_removal_form_is_refused_with_the_form(client, db):
    response = client.post("/datasets/removal/", {"name": "A\x00nn", "email": "a@example.org", "text": "x\x00",
                                                  "reason": "y"})
    assert response.status_code == 200 and "Null characters are not allowed" in response.content.decode()
