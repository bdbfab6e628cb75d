"""Every role × stage × endpoint through the real API, tokens and SeaweedFS: status and reason of each cell.

The expectations are written out here by hand (EXPECTED), not derived from releases/access.py, so the
matrix checks the rule rather than repeating it.
"""

import itertools
from datetime import timedelta

import pytest
from django.utils import timezone

from releases.access import grants, partners
from releases.models import AuditEvent, IssuedLink
from tests.releases.conftest import make_grant, make_partner, move, publish_terms, token_for, upload

pytestmark = pytest.mark.integration

STAGES = ["internal", "partners", "public", "withdrawn"]
ENDPOINTS = ["manifest", "link", "file"]
OK = (200, None)
HIDDEN = (404, "model_size_not_found")
WITHDRAWN = (403, "withdrawn")


def _on_partners_stage(status_reason):
    """Expectations of a non-staff role: only the partners stage depends on who they are."""
    return {"internal": HIDDEN, "partners": status_reason, "public": OK, "withdrawn": WITHDRAWN}


EXPECTED: dict[str, dict[str, tuple[int, str | None]]] = {
    "anonymous": _on_partners_stage((401, "not_authenticated")),
    "plain_account": _on_partners_stage((403, "not_a_partner")),
    "member_without_grant": _on_partners_stage((403, "no_grant")),
    "member_expired_grant": _on_partners_stage((403, "grant_expired")),
    "member_revoked_grant": _on_partners_stage((403, "grant_revoked")),
    "member_future_grant": _on_partners_stage((403, "grant_not_started")),
    "member_active_grant": _on_partners_stage(OK),
    "inactive_partner": _on_partners_stage((403, "partner_inactive")),
    "terms_not_accepted": _on_partners_stage((403, "terms_not_accepted")),
    "policy_staff": dict.fromkeys(STAGES, OK),
    "policy_staff_without_is_staff": dict.fromkeys(STAGES, OK),
    "operator": dict.fromkeys(STAGES, OK),
    # is_staff opens the admin's door and nothing else; a superuser holds only what a role grants.
    "django_staff": _on_partners_stage((403, "not_a_partner")),
    "superuser": _on_partners_stage((403, "not_a_partner")),
}


# --------------------------------------------------------------------------- roles, built through the services
def _member(ctx, *, grant: str | None, accept_terms: bool = True, partner_active: bool = True):
    pat, alice, size = ctx["pat"], ctx["alice"], ctx["size"]
    partner = make_partner(alice, pat)
    terms = publish_terms(alice, "v1", *([pat] if accept_terms else []))
    if grant == "active":
        make_grant(partner, size, alice)
    elif grant == "expired":
        make_grant(partner, size, alice, starts_in_days=-10, days=9)
    elif grant == "future":
        make_grant(partner, size, alice, starts_in_days=2)
    elif grant == "revoked":
        grants.grant_revoke(grant=make_grant(partner, size, alice), actor=alice, reason="Terms breached.")
    if not partner_active:
        partners.partner_set_active(partner=partner, active=False, actor=alice, reason="Agreement lapsed.")
    assert terms.version == "v1"
    return pat


def _terms_not_accepted(ctx):
    pat = _member(ctx, grant="active")
    # A new version is in force: accepting v1 no longer suffices.
    terms_v2 = partners.terms_publish(version="v2", text="Partner terms v2.", actor=ctx["alice"])
    assert terms_v2.acceptances.count() == 0
    return pat


ROLES = {
    "anonymous": lambda ctx: None,
    "plain_account": lambda ctx: ctx["rita"],
    "member_without_grant": lambda ctx: _member(ctx, grant=None),
    "member_expired_grant": lambda ctx: _member(ctx, grant="expired"),
    "member_revoked_grant": lambda ctx: _member(ctx, grant="revoked"),
    "member_future_grant": lambda ctx: _member(ctx, grant="future"),
    "member_active_grant": lambda ctx: _member(ctx, grant="active"),
    "inactive_partner": lambda ctx: _member(ctx, grant="active", partner_active=False),
    "terms_not_accepted": _terms_not_accepted,
    "policy_staff": lambda ctx: ctx["carol"],
    "policy_staff_without_is_staff": lambda ctx: ctx["dora"],
    "operator": lambda ctx: ctx["otto"],
    "django_staff": lambda ctx: ctx["django_user_model"].objects.create_user("sam", password="pw", is_staff=True),
    "superuser": lambda ctx: ctx["django_user_model"].objects.create_superuser("root", "root@example.org", "pw"),
}
assert set(ROLES) == set(EXPECTED)

APPROVERS_FOR = {"internal": [], "partners": ["bob"], "public": ["bob", "carol"], "withdrawn": ["bob"]}


def _call(api, endpoint: str, slug: str, filename: str):
    if endpoint == "manifest":
        return api.get(f"/api/v1/models/{slug}/manifest/")
    if endpoint == "link":
        return api.post(f"/api/v1/models/{slug}/files/{filename}/link/")
    return api.get(f"/api/v1/models/{slug}/files/{filename}")


CELLS = list(itertools.product(ROLES, STAGES, ENDPOINTS))


@pytest.mark.parametrize(("role", "stage", "endpoint"), CELLS, ids=["-".join(cell) for cell in CELLS])
def test_access_matrix(role, stage, endpoint, api, s3, size, alice, bob, carol, dora, otto, rita, pat,
                       django_user_model, tmp_path):
    artifact = upload(size, tmp_path)
    ctx = {"size": size, "alice": alice, "bob": bob, "carol": carol, "dora": dora, "otto": otto, "rita": rita,
           "pat": pat, "django_user_model": django_user_model}
    user = ROLES[role](ctx)
    if stage != "internal":
        move(size, stage, requester=alice, approvers=[ctx[name] for name in APPROVERS_FOR[stage]])
    if user is not None:
        api.credentials(HTTP_AUTHORIZATION=f"Token {token_for(user)}")
    links_before = AuditEvent.objects.filter(action="link.issued").count()

    response = _call(api, endpoint, size.slug, artifact.filename)

    status, reason = EXPECTED[role][stage]
    issues_link = status == 200 and endpoint != "manifest"
    if status == 200 and endpoint == "file":
        status = 302
    assert response.status_code == status, response.content
    if reason is not None:
        assert response.json()["error"] == reason
        assert response.json()["detail"]
    if reason == "not_authenticated":
        assert response["WWW-Authenticate"] == "Token"
    if endpoint == "link" and status == 200:
        body = response.json()
        assert body["url"].startswith(s3.endpoint_url)
        assert (body["bytes"], body["sha256"]) == (artifact.bytes, artifact.sha256)
    if endpoint == "file" and status == 302:
        assert response["Location"].startswith(s3.endpoint_url)
    if endpoint == "manifest" and status == 200:
        assert [f["sha256"] for f in response.json()["files"]] == [artifact.sha256]
        assert response.json()["stage"] == stage
    assert IssuedLink.objects.count() == (1 if issues_link else 0)
    assert AuditEvent.objects.filter(action="link.issued").count() - links_before == (1 if issues_link else 0)


def test_a_grant_that_ended_a_moment_ago_is_expired(api, s3, size, alice, bob, pat, tmp_path):
    """The boundary of expires_at: a grant is active strictly before it."""
    artifact = upload(size, tmp_path)
    partner = make_partner(alice, pat)
    publish_terms(alice, "v1", pat)
    grant = make_grant(partner, size, alice, starts_in_days=-1, days=1 + 1 / 86400)
    move(size, "partners", requester=alice, approvers=[bob])
    api.credentials(HTTP_AUTHORIZATION=f"Token {token_for(pat)}")
    assert api.post(f"/api/v1/models/{size.slug}/files/{artifact.filename}/link/").status_code == 200
    from releases.access import rules as access

    later = grant.expires_at + timedelta(microseconds=1)
    assert access.may(pat, size, access.DOWNLOAD, now=later).reason == "grant_expired"
    assert access.may(pat, size, access.DOWNLOAD, now=grant.expires_at).reason == "grant_expired"
    assert access.may(pat, size, access.DOWNLOAD, now=timezone.now()).allowed
