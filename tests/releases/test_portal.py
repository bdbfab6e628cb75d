"""The partner portal through the test client: sign-in, grants and quota use, terms, tokens, files, requests."""

import pytest
from django.test import Client
from knox.models import AuthToken

from releases.access import grants, tokens
from releases.models import AccessRequest, AuditEvent, IssuedLink
from tests.releases.conftest import make_grant, make_partner, move, publish_terms, upload

pytestmark = pytest.mark.integration


@pytest.fixture
def browser(pat) -> Client:
    client = Client()
    client.force_login(pat)
    return client


@pytest.fixture
def uploaded(s3, size, tmp_path):
    """The size's file, stored while it is internal (a released size's files never change)."""
    return upload(size, tmp_path)


@pytest.fixture
def lab(size, alice, bob, pat):
    partner = make_partner(alice, pat)
    move(size, "partners", requester=alice, approvers=[bob])
    return partner


def test_it_asks_anonymous_visitors_to_sign_in(db):
    response = Client().get("/portal/")
    assert response.status_code == 302 and response["Location"].startswith("/portal/login/")


def test_signing_in_with_a_password_shows_the_organisation(lab, pat):
    client = Client()
    response = client.post("/portal/login/", {"username": "pat", "password": "pw-pat"}, follow=True)
    assert response.status_code == 200
    assert "Example Security Lab" in response.content.decode()


def test_it_lists_files_with_quota_use_only_where_may_allows(browser, s3, size, uploaded, lab, alice, pat, tmp_path):
    publish_terms(alice, "v1", pat)
    make_grant(lab, size, alice, quota_links=3, quota_period_s=3600)
    page = browser.get("/portal/").content.decode()
    assert "model.safetensors" in page and "0 of 3 used" in page and "active" in page
    assert "Quota: 3 links per file per hour." in page
    download = browser.post(f"/portal/files/{size.slug}/model.safetensors")
    assert download.status_code == 302 and download["Location"].startswith(s3.endpoint_url)
    assert IssuedLink.objects.get().user == pat
    assert "1 of 3 used" in browser.get("/portal/").content.decode()
    # The Hugging Face clients' two variables and the repository name (releases/hub/).
    assert "export HF_ENDPOINT=http://testserver HF_TOKEN=" in page and f"mini/{size.slug}" in page


def test_without_accepted_terms_no_files_are_listed_until_accepted(browser, s3, size, uploaded, lab, alice, tmp_path):
    terms = publish_terms(alice, "v1")
    make_grant(lab, size, alice)
    page = browser.get("/portal/").content.decode()
    assert "terms_not_accepted" in page and 'id="terms-to-accept"' in page
    assert "model.safetensors" not in page
    assert browser.post(f"/portal/files/{size.slug}/model.safetensors").status_code == 302  # back, with an error
    assert IssuedLink.objects.count() == 0
    browser.post("/portal/terms/accept/", {"terms": terms.pk})
    page = browser.get("/portal/").content.decode()
    assert "You accepted the terms in force, v1." in page and "model.safetensors" in page
    assert AuditEvent.objects.filter(action="terms.accepted", actor_label="pat").exists()


def test_a_revoked_grant_shows_its_reason_and_no_files(browser, s3, size, uploaded, lab, alice, pat, tmp_path):
    publish_terms(alice, "v1", pat)
    grants.grant_revoke(grant=make_grant(lab, size, alice), actor=alice, reason="Agreement ended.")
    page = browser.get("/portal/").content.decode()
    assert "grant_revoked" in page and "Agreement ended." in page and "model.safetensors" not in page


def test_tokens_are_created_shown_once_and_revoked(browser, pat, api, lab):
    created = browser.post("/portal/tokens/", {"name": "lab workstation", "expires_days": "7"})
    assert created.status_code == 302 and created["Location"] == "/portal/tokens/new/"
    response = browser.get("/portal/tokens/new/")
    key = response.context["key"]
    assert key in response.content.decode() and response["Cache-Control"] == "no-store"
    assert "export HF_ENDPOINT=http://testserver HF_TOKEN=&lt;key&gt;" in response.content.decode()
    token = AuthToken.objects.get(user=pat)
    assert token.label.name == "lab workstation"
    # Issue #20, defect 7: reloading the page neither shows the key again nor makes a second token.
    reloaded = browser.get("/portal/tokens/new/", follow=True)
    assert key not in reloaded.content.decode() and "shown once" in reloaded.content.decode()
    assert AuthToken.objects.filter(user=pat).count() == 1
    assert key not in browser.get("/portal/").content.decode()
    listed = browser.get("/portal/tokens/")  # by GET: the token list, not a blank 405
    assert listed.status_code == 302 and listed["Location"] == "/portal/#tokens"
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert api.get("/api/v1/models/").status_code == 200
    # Revoking asks first: the GET is a confirmation page that changes nothing.
    confirm = browser.get(f"/portal/tokens/{token.token_key}/revoke/")
    assert confirm.status_code == 200 and "Revoke this token" in confirm.content.decode()
    assert AuthToken.objects.filter(user=pat).exists()
    browser.post(f"/portal/tokens/{token.token_key}/revoke/")
    assert not AuthToken.objects.filter(user=pat).exists()
    assert api.get("/api/v1/models/").status_code == 401


def test_a_member_cannot_revoke_someone_elses_token(browser, rita, lab):
    token, _ = tokens.token_create(user=rita, name="rita's", expires_days=7, actor=rita)
    assert browser.post(f"/portal/tokens/{token.token_key}/revoke/").status_code == 404
    assert AuthToken.objects.filter(pk=token.pk).exists()


def test_a_member_requests_access_with_a_purpose(browser, size, lab, pat):
    browser.post("/portal/access-requests/", {"model_size": size.pk, "purpose": "Detector evaluation."})
    request = AccessRequest.objects.get()
    assert (request.requested_by, request.status, request.purpose) == (pat, "pending", "Detector evaluation.")
    assert "pending" in browser.get("/portal/").content.decode()


def test_plain_accounts_see_no_organisation(rita):
    client = Client()
    client.force_login(rita)
    assert "belongs to no partner organisation" in client.get("/portal/").content.decode()


def test_request_access_from_a_size_page_preselects_that_size(browser, s3, size, lab, alice, bob, tmp_path):
    """Issue #20, defect 6: the portal's form preselected the first size, whatever page the member came from."""
    from tests.releases.conftest import make_size

    other = make_size("mini-3m")
    upload(other, tmp_path)
    move(other, "partners", requester=alice, approvers=[bob])
    size_page = browser.get("/models/mini-3m/").content.decode()
    assert 'href="/portal/access-requests/?size=mini-3m"' in size_page
    form = browser.get("/portal/access-requests/?size=mini-3m").content.decode()
    assert f'<input type="hidden" name="model_size" value="{other.pk}">' in form
    assert '<label for="request-purpose">' in form and "Request access to mini-3m" in form
    portal = browser.get("/portal/?request=mini-3m").content.decode()
    assert '<option value="mini-3m" selected>' in portal and '<option value="mini-1m">' in portal


def test_the_portal_reads_well_labelled_and_on_a_phone(browser, s3, size, uploaded, lab, alice, pat):
    """Issue #20, defect 13: no labels, accepted terms unreadable, sha256 in nine-line columns at 390 px,
    admin grant fields without help."""
    publish_terms(alice, "v1", pat)
    make_grant(lab, size, alice)
    page = browser.get("/portal/").content.decode()
    assert 'id="accepted-terms"' in page and "Read the terms v1 again" in page
    assert '<label for="token-name">' in page and '<label for="token-days">' in page
    assert f'<td class="hash sha256">{uploaded.sha256}</td>' in page
    assert page.count('<div class="scroll"><table>') == 2  # tables scroll inside the page, not the page
    assert f'<option value="{size.slug}"' not in page  # the size whose grant is held is not offered to request
    staff = Client()
    staff.force_login(alice)
    form = staff.get("/admin/releases/accessgrant/add/").content.decode()
    assert "Links per file within each quota period" in form and "86400 is a day" in form


def test_a_member_withdraws_a_pending_request_in_the_portal(browser, size, lab, pat):
    browser.post("/portal/access-requests/", {"model_size": size.pk, "purpose": "Evaluation."})
    asked = AccessRequest.objects.get()
    assert f'action="/portal/access-requests/{asked.pk}/withdraw/"' in browser.get("/portal/").content.decode()
    browser.post(f"/portal/access-requests/{asked.pk}/withdraw/")
    asked.refresh_from_db()
    assert asked.status == "withdrawn"
