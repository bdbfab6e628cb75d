"""GET /api/v1/models/ and /api/v1/models/{slug}/, checked against the generated OpenAPI schema."""

import pytest
import yaml
from django.core.management import call_command
from django.urls import reverse
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate

from registry import revisions
from registry.models import ModelSize
from releases.stage_names import Stage


@pytest.fixture
def seeded(db):
    call_command("seed_gpt2", stdout=open("/dev/null", "w"))
    # Stages move through releases' services; here the rows are set directly to test visibility alone.
    ModelSize.objects.filter(family__slug="gpt2").update(stage=Stage.PUBLIC)


@pytest.fixture(scope="module")
def schema(django_db_blocker):
    from django.test import Client

    with django_db_blocker.unblock():
        body = Client().get("/api/schema/").content
    document = yaml.safe_load(body)
    validate(document)
    return document


def _validator(schema: dict, path: str, status: str = "200") -> OAS30Validator:
    response_schema = schema["paths"][path]["get"]["responses"][status]["content"]["application/json"]["schema"]
    resolved = {**response_schema, "components": schema["components"]}
    return OAS30Validator(resolved)


def test_list_shows_released_sizes_with_hparams_and_parameter_count(api, seeded, schema):
    response = api.get(reverse("model-list"))
    assert response.status_code == 200
    body = response.json()
    _validator(schema, "/api/v1/models/").validate(body)
    by_slug = {row["slug"]: row for row in body["results"]}
    assert by_slug["gpt2-124m"]["parameter_count"] == 124_439_808
    assert by_slug["gpt2-124m"]["hparams"]["n_layer"] == 12
    assert by_slug["gpt2-124m"]["stage"] == "public"
    assert by_slug["gpt2-124m"]["family"]["slug"] == "gpt2"


def test_internal_sizes_are_not_listed_for_anonymous_callers(api, seeded):
    slugs = {row["slug"] for row in api.get(reverse("model-list")).json()["results"]}
    assert not any(slug.startswith("mini-") for slug in slugs)


def test_internal_sizes_are_listed_for_staff(api, seeded, alice):
    api.force_authenticate(alice)
    slugs = {row["slug"] for row in api.get(reverse("model-list")).json()["results"]}
    assert "mini-1m" in slugs


def test_internal_size_is_404_for_a_plain_account(api, seeded, rita):
    api.force_authenticate(rita)
    response = api.get(reverse("model-detail", args=["mini-1m"]))
    assert response.status_code == 404
    assert response.json()["error"] == "model_size_not_found"


def test_unknown_slug_is_404_json(api, seeded):
    response = api.get(reverse("model-detail", args=["gpt2-9000m"]))
    assert response.status_code == 404
    assert response.json() == {"error": "model_size_not_found", "detail": "No model size 'gpt2-9000m'."}


def test_detail_carries_card_evals_and_artifacts(api, db, s3, tmp_path, schema):
    from registry.seed_data import gpt2_family_seed
    from releases.governance.seed_history import gpt2_history_record

    config = tmp_path / "config.json"  # not weights: a well-formed 124M model.safetensors is 250 MB
    config.write_text('{"model_type": "gpt2", "n_layer": 12}')
    size = next(size for size in gpt2_family_seed() if size.slug == "gpt2-124m")
    artifact = revisions.artifact_register(size=size, path=config)  # stored while internal, then released
    gpt2_history_record()

    response = api.get(reverse("model-detail", args=["gpt2-124m"]))
    assert response.status_code == 200
    body = response.json()
    _validator(schema, "/api/v1/models/{slug}/").validate(body)
    assert body["artifacts"] == [
        {"filename": "config.json", "bytes": artifact.bytes, "sha256": artifact.sha256,
         "format": "json", "created_at": body["artifacts"][0]["created_at"]}
    ]
    assert "WebText" in body["card"]["details"]
    assert body["evals"] == []
    large = api.get(reverse("model-detail", args=["gpt2-1558m"])).json()
    assert any(e["dataset"] == "WikiText-2" and e["metric"] == "perplexity" and e["value"] == 18.34
               for e in large["evals"])


def test_list_queries_do_not_grow_with_the_number_of_sizes(api, seeded, django_assert_max_num_queries):
    with django_assert_max_num_queries(6):
        api.get(reverse("model-list"))
