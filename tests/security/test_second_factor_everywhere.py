"""With the second factor on, a password opens no admin page and changes nothing through the API: the attacks
of one staff password (or a partner portal session) reaching /admin/ or a governance call are refused."""

import pytest
from django.core.management import call_command
from django.test import Client
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice
from knox.models import AuthToken

from releases.models import AuditEvent, StageChangeRequest
from tests.releases.conftest import ALL_FACTORS, RATIONALE, request_change, token_for

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def otp_on(settings):
    settings.STAGEGATE_SECOND_FACTOR = True


def _code(device: TOTPDevice) -> str:
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):06d}"


@pytest.mark.parametrize("page", ["/admin/", "/admin/releases/stagechangerequest/", "/admin/auth/user/",
                                  "/admin/releases/dashboard/"])
def test_a_password_only_portal_session_opens_no_admin_page(alice, page):
    client = Client()
    assert client.post("/portal/login/", {"username": "alice", "password": "pw-alice"}).status_code == 302
    response = client.get(page)
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


def test_the_admin_login_asks_for_the_code_and_then_opens_the_admin(alice):
    device = TOTPDevice.objects.create(user=alice, name="phone", confirmed=True)
    client = Client()
    assert 'name="otp_token"' in client.get("/admin/login/").content.decode()
    login = {"username": "alice", "password": "pw-alice", "otp_device": device.persistent_id, "next": "/admin/"}
    assert client.post("/admin/login/", login).status_code == 200  # no code: the form again
    assert client.post("/admin/login/", {**login, "otp_token": _code(device)}).status_code == 302
    assert client.get("/admin/releases/stagechangerequest/").status_code == 200


def _create(api, size, **extra):
    return api.post(f"/api/v1/models/{size.slug}/stage-requests/",
                    {"to_stage": "partners", "rationale": RATIONALE, "factors": ALL_FACTORS}, format="json",
                    **extra)


def test_a_governance_call_with_a_token_alone_is_refused_and_changes_nothing(api, size, dora):
    api.credentials(HTTP_AUTHORIZATION=f"Token {token_for(dora)}")
    response = _create(api, size)
    assert response.status_code == 403 and response.json()["error"] == "second_factor_required"
    assert not StageChangeRequest.objects.exists()
    assert api.get("/api/v1/stage-requests/").status_code == 200  # reading needs no second factor


def test_the_current_code_in_the_header_passes(api, size, dora):
    device = TOTPDevice.objects.create(user=dora, name="phone", confirmed=True)
    api.credentials(HTTP_AUTHORIZATION=f"Token {token_for(dora)}")
    assert _create(api, size, HTTP_X_STAGEGATE_OTP=_code(device)).status_code == 201


def test_a_token_created_with_a_code_is_verified_and_passes_on_its_own(api, size, dora):
    device = TOTPDevice.objects.create(user=dora, name="phone", confirmed=True)
    api.credentials(HTTP_AUTHORIZATION=f"Token {token_for(dora)}")
    wrong = f"{(int(_code(device)) + 1) % 1_000_000:06d}"
    assert api.post("/api/v1/tokens/", {"name": "cli", "otp_token": wrong}, format="json").status_code == 403
    device.refresh_from_db()
    device.throttle_reset()  # django-otp makes the next try after a wrong code wait: skip that wait here
    created = api.post("/api/v1/tokens/", {"name": "cli", "otp_token": _code(device), "scope": "governance"},
                       format="json")
    assert created.status_code == 201 and created.json()["verified"] is True
    api.credentials(HTTP_AUTHORIZATION=f"Token {created.json()['key']}")
    response = _create(api, size)
    assert response.status_code == 201, response.content
    unverified = api.post("/api/v1/tokens/", {"name": "plain"}, format="json")  # minted by a verified token
    assert unverified.json()["verified"] is True


@pytest.mark.parametrize("path", ["/api/v1/jobs/"])
def test_job_submission_needs_the_second_factor_too(api, otto, path):
    api.credentials(HTTP_AUTHORIZATION=f"Token {token_for(otto)}")
    response = api.post(path, {"kind": "train", "params": {"model_size": "nope"}}, format="json")
    assert response.status_code == 403 and response.json()["error"] == "second_factor_required"


def test_approving_in_someone_elses_name_is_impossible_even_with_their_session(api, size, alice, bob):
    """The insider's attack, end to end: alice cannot obtain bob's key, and bob's password alone approves nothing."""
    change = request_change(size, alice, "partners")
    api.force_authenticate(alice)
    assert api.post("/api/v1/tokens/", {"name": "for bob"}, format="json").status_code == 201
    assert AuthToken.objects.get().user == alice  # a token is always its creator's own
    api.force_authenticate(bob)  # as if bob's password were known
    assert api.post(f"/api/v1/stage-requests/{change.pk}/approve/", {}, format="json").status_code == 403
    change.refresh_from_db()
    assert change.status == "pending"


def test_totp_device_command_prints_a_setup_url_once(alice, capsys):
    call_command("totp_device", "alice")
    assert "otpauth://totp/" in capsys.readouterr().out
    assert TOTPDevice.objects.get(user=alice).confirmed


def test_every_audit_row_of_a_token_call_names_the_token(api, size, alice, bob, settings):
    settings.STAGEGATE_SECOND_FACTOR = False
    key = token_for(bob)
    change = request_change(size, alice, "partners")
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert api.post(f"/api/v1/stage-requests/{change.pk}/approve/", {}, format="json").status_code == 200
    token_key = AuthToken.objects.get(user=bob).token_key
    for action in ("stage_request.approved", "stage.applied"):
        assert AuditEvent.objects.get(action=action).data["via_token"] == token_key
    assert "via_token" not in AuditEvent.objects.get(action="stage_request.created").data  # a direct call
