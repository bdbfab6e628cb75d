"""schemathesis against /api/schema/: every operation, anonymous and with a partner and a staff token.

No 5xx, and every response conforms to the schema (its body, content type and headers). The example
budget is bounded for CI (FUZZ_EXAMPLES, default 8 per operation and caller); bench/fuzz_api.py runs a
long campaign against a real gunicorn.
"""

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import content_type_conformance, not_a_server_error
from schemathesis.specs.openapi.checks import response_headers_conformance, response_schema_conformance

from config.wsgi import application

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "8"))
# bench/fuzz_api.py sets this to collect every call's status for its counts.
REPORT = os.environ.get("FUZZ_REPORT")
CALLS: list[tuple[str, str, str, int]] = []
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance,
          response_headers_conformance]

# Loaded at collection: generating the schema touches no database.
schema = schemathesis.openapi.from_wsgi("/api/schema/", application)


@pytest.fixture(autouse=True)
def keep_the_test_connection():
    """Calls go straight to the WSGI app; like Django's test client, keep it from closing the test's connection."""
    from django.core import signals
    from django.db import close_old_connections

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


def _callers(django_user_model, policy_staff_group, *, weights_in=None) -> dict[str, dict[str, str]]:
    """A partner member with a grant and accepted terms, and policy staff, each with a token; mini-1m at the
    partners stage, with its weights when `weights_in` (a folder) is given (stored before its release)."""
    from knox.models import AuthToken

    from tests.releases.conftest import make_grant, make_partner, make_size, move, publish_terms, upload

    staff = django_user_model.objects.create_user("fuzz-staff", is_staff=True)
    staff.groups.add(policy_staff_group)
    other = django_user_model.objects.create_user("fuzz-staff-2", is_staff=True)
    other.groups.add(policy_staff_group)
    member = django_user_model.objects.create_user("fuzz-partner")
    size = make_size()
    if weights_in is not None:
        upload(size, weights_in)
    make_size("mini-3m")
    partner = make_partner(staff, member)
    publish_terms(staff, "v1", member)
    make_grant(partner, size, staff)
    move(size, "partners", requester=staff, approvers=[other])
    return {
        "anonymous": {},
        "partner": {"Authorization": f"Token {AuthToken.objects.create(user=member)[1]}"},
        "staff": {"Authorization": f"Token {AuthToken.objects.create(user=staff)[1]}"},
    }


@pytest.fixture
def callers(db, django_user_model, policy_staff_group) -> dict[str, dict[str, str]]:
    return _callers(django_user_model, policy_staff_group)


@pytest.fixture(scope="module", autouse=True)
def report():
    yield
    if REPORT:
        import json

        with open(REPORT, "w") as out:
            json.dump(CALLS, out)


def _call(case, callers, who: str) -> None:
    response = case.call_and_validate(headers=callers[who], checks=CHECKS)
    CALLS.append((who, case.method, case.operation.label, response.status_code))


BUDGET = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))


@schema.parametrize()
@BUDGET
def test_anonymous_calls_conform(case, callers):
    _call(case, callers, "anonymous")


@schema.parametrize()
@BUDGET
def test_partner_token_calls_conform(case, callers):
    _call(case, callers, "partner")


@schema.parametrize()
@BUDGET
def test_staff_token_calls_conform(case, callers):
    _call(case, callers, "staff")


SUCCESSES = [
    # (caller, method, path, path parameters, expected status): the answers random parameters rarely reach.
    ("partner", "GET", "/api/v1/models/{slug}/manifest/", {"slug": "mini-1m"}, 200),
    ("partner", "POST", "/api/v1/models/{slug}/files/{filename}/link/",
     {"slug": "mini-1m", "filename": "model.safetensors"}, 200),
    ("partner", "GET", "/api/v1/models/{slug}/files/{filename}", {"slug": "mini-1m", "filename": "model.safetensors"},
     302),
    ("anonymous", "GET", "/api/v1/models/{slug}/", {"slug": "mini-1m"}, 200),
    ("anonymous", "GET", "/api/v1/models/{slug}/history/", {"slug": "mini-1m"}, 200),
    ("anonymous", "GET", "/api/v1/datasets/", {}, 200),
    ("anonymous", "GET", "/api/v1/datasets/{name}/", {"name": "fuzz-reference"}, 200),
    ("anonymous", "POST", "/api/v1/datasets/{name}/{split}/link/", {"name": "fuzz-reference", "split": "test"}, 200),
    ("anonymous", "GET", "/gpt-2/output-dataset/v1/{filename}", {"filename": "fuzz-reference.valid.jsonl"}, 302),
]


@pytest.mark.integration
def test_successful_answers_conform_too(db, s3, django_user_model, policy_staff_group, tmp_path, alice):
    from tests.datasets.conftest import register
    from tests.releases.conftest import move_dataset

    callers = _callers(django_user_model, policy_staff_group, weights_in=tmp_path)
    staff = django_user_model.objects.filter(username__startswith="fuzz-staff").order_by("username")
    move_dataset(register("fuzz-reference"), "public", requester=alice, approvers=list(staff))
    for who, method, path, parameters, status in SUCCESSES:
        case = schema[path][method].Case(path_parameters=parameters)
        response = case.call_and_validate(headers=callers[who], checks=CHECKS)
        assert response.status_code == status, (who, method, path, response.status_code, response.text[:300])
