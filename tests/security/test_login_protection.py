"""Login protection (django-axes) on the admin and the portal, and the second factor on release decisions."""

import pytest
from django.test import Client
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from releases.models import StageChangeRequest, StageDecision
from tests.releases.conftest import request_change

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_lockouts():
    from axes.models import AccessAttempt

    AccessAttempt.objects.all().delete()


@pytest.mark.parametrize("login_url", ["/admin/login/", "/portal/login/"])
def test_repeated_wrong_passwords_lock_the_account_out_even_with_the_right_one(login_url, alice, settings):
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        response = client.post(login_url, {"username": "alice", "password": "wrong"})
        assert response.status_code in (200, 429)  # the form again, then the lockout
    response = client.post(login_url, {"username": "alice", "password": "pw-alice"})
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session


def test_a_right_password_before_the_limit_signs_in_and_resets_the_count(alice, settings):
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        client.post("/portal/login/", {"username": "alice", "password": "wrong"})
    response = client.post("/portal/login/", {"username": "alice", "password": "pw-alice"})
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(alice.pk)
    # Reset: another LIMIT - 1 failures from a fresh client still leave the right password working.
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        client.post("/portal/login/", {"username": "alice", "password": "wrong"})
    assert client.post("/portal/login/", {"username": "alice", "password": "pw-alice"}).status_code == 302


def test_a_lockout_is_per_username_so_others_still_sign_in(alice, bob, settings):
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post("/portal/login/", {"username": "alice", "password": "wrong"})
    assert client.post("/portal/login/", {"username": "bob", "password": "pw-bob"}).status_code == 302


# --------------------------------------------------------------------------- second factor
@pytest.fixture
def otp_on(settings):
    settings.STAGEGATE_SECOND_FACTOR = True


@pytest.fixture
def pending(size, alice):
    return request_change(size, alice, "partners")


def _device(user) -> TOTPDevice:
    return TOTPDevice.objects.create(user=user, name="phone", confirmed=True)


def _code(device: TOTPDevice) -> str:
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):06d}"


def test_an_api_approval_without_a_second_factor_is_refused(api, bob, pending, otp_on):
    api.force_authenticate(bob)
    response = api.post(f"/api/v1/stage-requests/{pending.pk}/approve/", {}, format="json")
    assert response.status_code == 403
    assert response.json()["error"] == "second_factor_required"
    pending.refresh_from_db()
    assert pending.status == StageChangeRequest.Status.PENDING
    assert not StageDecision.objects.exists()


def test_an_api_approval_with_a_wrong_code_is_refused(api, bob, pending, otp_on):
    device = _device(bob)
    api.force_authenticate(bob)
    wrong = f"{(int(_code(device)) + 1) % 1_000_000:06d}"
    response = api.post(f"/api/v1/stage-requests/{pending.pk}/approve/", {"otp_token": wrong}, format="json")
    assert response.status_code == 403
    assert not StageDecision.objects.exists()


def test_an_api_approval_with_the_current_totp_code_is_recorded(api, bob, pending, otp_on):
    device = _device(bob)
    api.force_authenticate(bob)
    response = api.post(f"/api/v1/stage-requests/{pending.pk}/approve/", {"otp_token": _code(device)},
                        format="json")
    assert response.status_code == 200, response.json()
    pending.refresh_from_db()
    assert pending.status == StageChangeRequest.Status.APPLIED


def test_an_api_rejection_also_needs_the_second_factor(api, bob, pending, otp_on):
    api.force_authenticate(bob)
    response = api.post(f"/api/v1/stage-requests/{pending.pk}/reject/", {"comment": "Not yet."}, format="json")
    assert response.status_code == 403
    pending.refresh_from_db()
    assert pending.status == StageChangeRequest.Status.PENDING


def _admin_approve(client: Client, request_id: int):
    return client.post(f"/admin/releases/stagechangerequest/{request_id}/approve/", {
        "comment": "Checked.", "confirm": "on"}, follow=True)


def test_an_admin_approval_from_an_unverified_session_is_refused(bob, pending, otp_on):
    client = Client()
    client.force_login(bob)
    response = _admin_approve(client, pending.pk)
    assert response.redirect_chain[-1][0].startswith("/admin/login/")  # the admin asks for the code first
    pending.refresh_from_db()
    assert pending.status == StageChangeRequest.Status.PENDING


def test_an_admin_approval_after_an_otp_login_is_recorded(bob, pending, otp_on):
    device = _device(bob)
    client = Client()
    login = {"username": "bob", "password": "pw-bob", "otp_device": device.persistent_id, "next": "/admin/"}
    refused = client.post("/admin/login/", {**login, "otp_token": "000000" if _code(device) != "000000" else "111111"})
    assert refused.status_code == 200 and "_auth_user_id" not in client.session  # a wrong code signs nobody in
    device.refresh_from_db()
    assert device.throttling_failure_count == 1  # and django-otp makes the next try wait: skip that wait here
    device.throttle_reset()
    assert client.post("/admin/login/", {**login, "otp_token": _code(device)}).status_code == 302
    response = _admin_approve(client, pending.pk)
    assert response.status_code == 200
    pending.refresh_from_db()
    assert pending.status == StageChangeRequest.Status.APPLIED


def test_without_the_setting_approvals_need_no_second_factor(api, bob, pending):
    api.force_authenticate(bob)
    assert api.post(f"/api/v1/stage-requests/{pending.pk}/approve/", {}, format="json").status_code == 200
