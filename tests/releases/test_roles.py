"""Roles are Django permissions granted by group: tried as the real actors, not as fixtures where everyone is
`is_staff`. dora is policy staff without `is_staff`; steve is `is_staff` without a role; otto is an operator;
admin_user a superuser without a role."""

import importlib

import pytest
from django.contrib.auth.models import Group

from releases.governance import stage_requests
from releases.roles import ROLE_PERMISSIONS, NotPolicyStaff, can
from releases.stage_names import Stage
from tests.releases.conftest import request_change, token_for

pytestmark = pytest.mark.django_db


def _as(api, user):
    api.credentials(HTTP_AUTHORIZATION=f"Token {token_for(user)}")
    return api


def test_the_roles_migration_grants_exactly_the_roles_permissions():
    migration = importlib.import_module("releases.migrations.0023_roles_with_questions")  # the latest roles
    assert {name: sorted(perms) for name, perms in migration.ROLES.items()} == ROLE_PERMISSIONS
    for name, perms in ROLE_PERMISSIONS.items():  # as migrated, before any fixture touches the groups
        group = Group.objects.get(name=name)
        granted = {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.select_related("content_type")}
        assert granted == set(perms), name


def test_is_staff_and_superuser_status_grant_no_role(steve, admin_user, dora, otto):
    assert not can(steve, "releases.see_unreleased") and not can(admin_user, "releases.see_unreleased")
    assert not can(admin_user, "releases.decide_stagechangerequest")
    assert can(dora, "releases.decide_stagechangerequest") and can(dora, "releases.see_unreleased")
    assert can(otto, "releases.see_unreleased") and can(otto, "workers.add_job")
    assert not can(otto, "releases.decide_stagechangerequest")


def test_a_policy_staff_member_without_is_staff_sees_internal_sizes_everywhere(client, api, size, dora):
    _as(api, dora)
    assert [m["slug"] for m in api.get("/api/v1/models/").json()["results"]] == [size.slug]
    assert api.get(f"/api/v1/models/{size.slug}/").status_code == 200
    assert api.get(f"/api/v1/models/{size.slug}/history/").status_code == 200
    assert api.get(f"/api/v1/models/{size.slug}/manifest/").status_code == 200
    client.force_login(dora)
    assert client.get(f"/models/{size.slug}/").status_code == 200
    assert size.slug in client.get("/").content.decode()


@pytest.mark.parametrize("who", ["steve", "admin_user", "rita"])
def test_anyone_without_the_role_sees_no_internal_size(client, api, size, who, request):
    user = request.getfixturevalue(who)
    _as(api, user)
    assert api.get("/api/v1/models/").json()["results"] == []
    assert api.get(f"/api/v1/models/{size.slug}/").status_code == 404
    assert api.get(f"/api/v1/models/{size.slug}/manifest/").status_code == 404
    client.force_login(user)
    assert client.get(f"/models/{size.slug}/").status_code == 404


@pytest.mark.parametrize("who", ["steve", "admin_user", "otto"])
def test_a_staff_member_without_the_policy_role_can_approve_nothing(api, size, alice, who, request):
    change = request_change(size, alice, Stage.PARTNERS)
    user = request.getfixturevalue(who)
    response = _as(api, user).post(f"/api/v1/stage-requests/{change.pk}/approve/", {}, format="json")
    assert response.status_code == 403 and response.json()["error"] == "not_policy_staff"
    with pytest.raises(NotPolicyStaff):
        stage_requests.stage_request_approve(request=change, approver=user)
    change.refresh_from_db()
    assert change.status == "pending"


def test_policy_staff_without_is_staff_approve_through_the_api(api, size, alice, dora):
    change = request_change(size, alice, Stage.PARTNERS)
    response = _as(api, dora).post(f"/api/v1/stage-requests/{change.pk}/approve/", {}, format="json")
    assert response.status_code == 200, response.content
    size.refresh_from_db()
    assert size.stage == Stage.PARTNERS


@pytest.mark.parametrize(("who", "status"), [("steve", 403), ("admin_user", 403), ("rita", 403), ("otto", 200),
                                             ("dora", 200)])
def test_jobs_are_for_operators_and_policy_staff(api, who, status, request):
    assert _as(api, request.getfixturevalue(who)).get("/api/v1/jobs/").status_code == status


def test_anonymous_callers_of_the_jobs_api_must_authenticate(api):
    assert api.get("/api/v1/jobs/").status_code == 401


def test_the_admin_shows_a_staff_member_without_a_role_nothing_of_governance(client, steve):
    client.force_login(steve)
    index = client.get("/admin/")
    assert index.status_code == 200
    assert "stagechangerequest" not in index.content.decode()
    for page in ("/admin/releases/stagechangerequest/", "/admin/releases/auditevent/",
                 "/admin/releases/accessgrant/", "/admin/knox/authtoken/", "/admin/releases/dashboard/"):
        assert client.get(page).status_code == 403, page


def test_policy_staff_without_is_staff_cannot_enter_the_admin(client, dora):
    client.force_login(dora)
    assert client.get("/admin/releases/stagechangerequest/").status_code == 302  # to the admin's login
