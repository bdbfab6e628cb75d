"""A partner member's own records through the API and the CLI (`stagegate grants`, `request-access`, `terms`):
the real server (live_server), real tokens, each member seeing their own organisation's only."""

import pytest
from stagegate_client import cli

from releases.models import AccessRequest, AuditEvent, TermsAcceptance
from tests.releases.conftest import (
    make_grant,
    make_partner,
    make_size,
    move,
    publish_terms,
    token_for,
    upload,
)

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def lab(size, alice, bob, pat, django_user_model):
    """pat's lab holds a grant with a quota for the size (at partners); another lab holds one for it too."""
    move(size, "partners", requester=alice, approvers=[bob])
    partner = make_partner(alice, pat)
    grant = make_grant(partner, size, alice, quota_links=20, quota_period_s=86400)
    olga = django_user_model.objects.create_user("olga", password="x")
    other = make_grant(make_partner(alice, olga, name="Other Lab"), size, alice)
    return {"partner": partner, "grant": grant, "other_grant": other, "olga": olga}


def _cli(live_server, token, *args) -> int:
    return cli.main([*args, "--server", live_server.url, "--token", token])


def test_grants_lists_the_callers_organisation_only(api, lab, pat, rita):
    api.credentials(HTTP_AUTHORIZATION=f"Token {token_for(pat)}")
    rows = api.get("/api/v1/grants/").json()
    assert [row["id"] for row in rows] == [lab["grant"].pk]
    assert rows[0] | {"starts_at": None, "expires_at": None} == {
        "id": lab["grant"].pk, "model_size": "mini-1m", "partner": "Example Security Lab", "state": "active",
        "purpose": lab["grant"].purpose, "starts_at": None, "expires_at": None, "quota_links": 20,
        "quota_period_s": 86400}
    api.credentials(HTTP_AUTHORIZATION=f"Token {token_for(rita)}")
    assert api.get("/api/v1/grants/").json() == []
    api.credentials()
    assert api.get("/api/v1/grants/").status_code == 401


def test_stagegate_grants_prints_them(live_server, lab, pat, capsys):
    assert _cli(live_server, token_for(pat), "grants") == 0
    out = capsys.readouterr().out
    assert f"{lab['grant'].pk:>6}  mini-1m" in out and "active" in out and "20 link(s) per file per 86,400 s" in out
    assert f"{lab['other_grant'].pk:>6}  mini-1m" not in out


def test_request_access_asks_for_a_size_and_refuses_one_already_held(live_server, lab, pat, alice, bob, capsys,
                                                                      s3, tmp_path):
    other = make_size("mini-3m")
    upload(other, tmp_path)
    move(other, "partners", requester=alice, approvers=[bob])
    token = token_for(pat)
    assert _cli(live_server, token, "request-access", "mini-3m", "--purpose", "Red-teaming the 3m size.") == 0
    assert "Access request #" in capsys.readouterr().out
    made = AccessRequest.objects.get(model_size=other)
    assert (made.partner, made.purpose, made.status) == (lab["partner"], "Red-teaming the 3m size.", "pending")
    assert AuditEvent.objects.filter(action="access_request.created").count() == 1
    # Issue #20, defect 6: a request for a size whose grant is held is refused, and creates nothing.
    assert _cli(live_server, token, "request-access", "mini-1m", "--purpose", "Again.") == cli.EXIT_REFUSED
    assert "grant_already_held" in capsys.readouterr().err
    assert AccessRequest.objects.count() == 1
    assert _cli(live_server, token, "request-access", "mini-9m", "--purpose", "x") == cli.EXIT_REFUSED


def test_terms_are_shown_and_accepted_by_version(live_server, lab, pat, alice, capsys, api):
    token = token_for(pat)
    assert _cli(live_server, token, "terms") == cli.EXIT_REFUSED  # none in force yet
    publish_terms(alice, "v1")
    assert _cli(live_server, token, "terms") == 0
    assert "Terms of use v1" in capsys.readouterr().out and not TermsAcceptance.objects.exists()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    stale = api.post("/api/v1/terms/accept/", {"version": "v0"}, format="json")
    assert stale.status_code == 409 and stale.json()["error"] == "terms_version_mismatch"
    assert _cli(live_server, token, "terms", "accept", "--version", "v1") == 0
    assert "You accepted the terms of use v1." in capsys.readouterr().out
    assert TermsAcceptance.objects.get().user == pat
    assert api.get("/api/v1/terms/").json()["accepted"] is True


def test_a_member_withdraws_a_pending_request_and_nobody_else_can(api, lab, pat, alice, bob, s3, tmp_path):
    from releases.access import grants as grant_service

    other = make_size("mini-3m")
    upload(other, tmp_path)
    move(other, "partners", requester=alice, approvers=[bob])
    asked = grant_service.access_request_create(user=pat, size=other, purpose="The larger size.")
    api.credentials(HTTP_AUTHORIZATION=f"Token {token_for(lab['olga'])}")  # another organisation's member
    assert api.post(f"/api/v1/access-requests/{asked.pk}/withdraw/").status_code == 404
    api.credentials(HTTP_AUTHORIZATION=f"Token {token_for(pat)}")
    answer = api.post(f"/api/v1/access-requests/{asked.pk}/withdraw/")
    assert answer.status_code == 200 and answer.json()["status"] == "withdrawn"
    assert api.post(f"/api/v1/access-requests/{asked.pk}/withdraw/").status_code == 409
    assert AuditEvent.objects.filter(action="access_request.withdrawn").count() == 1
    # Withdrawn, it no longer blocks a new request for the same size.
    assert grant_service.access_request_create(user=pat, size=other, purpose="Again, later.").status == "pending"
