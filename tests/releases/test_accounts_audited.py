"""Accounts and role groups in the admin: every change to what decides someone's access (their role groups,
direct permissions, active/staff/superuser flags, and what a group grants) is an audit event."""

import pytest
from django.contrib.auth.models import Group, Permission
from django.test import Client

from releases.models import AuditEvent
from releases.roles import POLICY_STAFF_GROUP, SEE_UNRELEASED, can


@pytest.fixture
def superuser(admin_user) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


def _user_form(user, **changes) -> dict:
    data = {"username": user.username, "first_name": "", "last_name": "", "email": user.email,
            "is_active": "on", "date_joined_0": user.date_joined.strftime("%Y-%m-%d"),
            "date_joined_1": user.date_joined.strftime("%H:%M:%S"), "groups": [], "user_permissions": []}
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


def test_putting_someone_in_policy_staff_is_recorded(superuser, rita, policy_staff_group):
    response = superuser.post(f"/admin/auth/user/{rita.pk}/change/",
                              _user_form(rita, is_staff="on", groups=[policy_staff_group.pk]))
    assert response.status_code == 302, response.content.decode()[:3000]
    assert can(type(rita).objects.get(pk=rita.pk), SEE_UNRELEASED)
    event = AuditEvent.objects.get(action="user.roles_changed")
    assert (event.actor_label, event.ip, event.target_id) == ("admin", "127.0.0.1", str(rita.pk))
    assert (event.before, event.after) == ({"groups": [], "is_staff": False},
                                           {"groups": [POLICY_STAFF_GROUP], "is_staff": True})


def test_deactivating_an_account_is_recorded(superuser, alice, policy_staff_group):
    superuser.post(f"/admin/auth/user/{alice.pk}/change/",
                   _user_form(alice, is_active=None, is_staff="on", groups=[policy_staff_group.pk]))
    event = AuditEvent.objects.get(action="user.roles_changed")
    assert (event.before, event.after) == ({"is_active": True}, {"is_active": False})


def test_editing_only_a_name_records_nothing(superuser, rita):
    response = superuser.post(f"/admin/auth/user/{rita.pk}/change/", _user_form(rita, first_name="Rita"))
    assert response.status_code == 302, response.content.decode()[:3000]
    assert not AuditEvent.objects.filter(action__startswith="user.").exists()


def test_a_new_account_and_its_deletion_are_recorded(superuser, django_user_model):
    response = superuser.post("/admin/auth/user/add/", {"username": "uma", "password1": "a-long-Passphrase-1",
                                                         "password2": "a-long-Passphrase-1", "usable_password": "true"})
    assert response.status_code == 302, response.content.decode()[:3000]
    uma = django_user_model.objects.get(username="uma")
    created = AuditEvent.objects.get(action="user.created")
    assert (created.actor_label, created.target_id, created.after["groups"]) == ("admin", str(uma.pk), [])
    superuser.post(f"/admin/auth/user/{uma.pk}/delete/", {"post": "yes"})
    assert not django_user_model.objects.filter(username="uma").exists()
    deleted = AuditEvent.objects.get(action="user.deleted")
    assert (deleted.actor_label, deleted.target_id, deleted.before["is_active"]) == ("admin", str(uma.pk), True)


def test_a_permission_added_to_a_role_group_is_recorded(superuser, alice, policy_staff_group):
    extra = Permission.objects.get(content_type__app_label="releases", codename="change_accessgrant")
    permissions = [*policy_staff_group.permissions.values_list("pk", flat=True), extra.pk]
    response = superuser.post(f"/admin/auth/group/{policy_staff_group.pk}/change/",
                              {"name": POLICY_STAFF_GROUP, "permissions": permissions})
    assert response.status_code == 302, response.content.decode()[:3000]
    event = AuditEvent.objects.get(action="role_group.changed")
    assert event.actor_label == "admin" and event.data == {"members": 1}
    assert "releases.change_accessgrant" in event.after["permissions"]
    assert "releases.change_accessgrant" not in event.before["permissions"]
    assert Group.objects.get(pk=policy_staff_group.pk).permissions.filter(pk=extra.pk).exists()
