"""Responses of the release-governance API match the generated OpenAPI schema."""

import pytest
import yaml
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate

from tests.releases.conftest import ALL_FACTORS, RATIONALE, token_for


@pytest.fixture(scope="module")
def schema(django_db_blocker):
    with django_db_blocker.unblock():
        document = yaml.safe_load(Client().get("/api/schema/").content)
    validate(document)
    return document


def _validate(schema: dict, path: str, method: str, status: str, body) -> None:
    response_schema = schema["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"]
    OAS30Validator({**response_schema, "components": schema["components"]}).validate(body)


def test_create_list_history_and_release_state_match_the_schema(api, schema, size, alice):
    call_command("seed_gpt2", stdout=open("/dev/null", "w"))
    api.credentials(HTTP_AUTHORIZATION=f"Token {token_for(alice)}")
    created = api.post(reverse("model-stage-requests", args=[size.slug]),
                       {"to_stage": "public", "rationale": RATIONALE, "factors": ALL_FACTORS}, format="json")
    assert created.status_code == 201
    _validate(schema, "/api/v1/models/{slug}/stage-requests/", "post", "201", created.json())
    listed = api.get(reverse("stage-request-list"), {"status": "pending"})
    _validate(schema, "/api/v1/stage-requests/", "get", "200", listed.json())
    history = api.get(reverse("model-history", args=["gpt2-1558m"]))
    _validate(schema, "/api/v1/models/{slug}/history/", "get", "200", history.json())
    assert [c["to_stage"] for c in history.json()["changes"]] == ["partners", "public"]
    state = api.get(reverse("release-state"), {"at": "2019-09-01"})
    _validate(schema, "/api/v1/release-state/", "get", "200", state.json())


def test_every_operation_has_a_summary_and_the_errors_it_can_answer(schema):
    """Issue #20, defect 15: operations had no summaries and most listed no error codes."""
    # Anyone, nothing to name, no rate limit: nothing to refuse.
    anonymous_reads = {("/api/v1/audit/public-key/", "get"), ("/api/v1/models/", "get")}
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            assert operation.get("summary"), (method, path)
            codes = set(operation["responses"])
            if (path, method) in anonymous_reads:
                continue
            assert any(code.startswith("4") for code in codes), (method, path, codes)
            if "{" in path:
                assert "404" in codes, (method, path)
            if method == "post":
                assert "400" in codes, (method, path)
            for code in codes - {"200", "201", "204", "302"}:
                body = operation["responses"][code].get("content", {}).get("application/json", {}).get("schema")
                assert body is None or body.get("$ref", "").endswith("/ErrorOutput") or code.startswith("3"), \
                    (method, path, code)
