"""`/api/v1/release-state/?at=` answers "who could get what on date X" per revision and dataset: the stage then,
the organisations with a grant in force then, their members then, and the terms each had accepted by then."""

from datetime import timedelta

import pytest
from django.utils import timezone
from freezegun import freeze_time

from releases.access import grants, partners
from releases.stage_names import Stage
from tests.releases.conftest import make_grant, make_partner, move, publish_terms, token_for

pytestmark = pytest.mark.django_db


def _state(api, dora, when):
    api.credentials(HTTP_AUTHORIZATION=f"Token {token_for(dora)}")
    response = api.get("/api/v1/release-state/", {"at": when.isoformat()})
    assert response.status_code == 200, response.content
    return response.json()


def test_the_past_names_the_revision_the_organisations_and_their_members_then(api, size, alice, bob, dora, pat,
                                                                               django_user_model):
    quinn = django_user_model.objects.create_user("quinn", password="pw-quinn")
    start = timezone.now()
    with freeze_time(start):
        lab = make_partner(alice, pat)
        partners.partner_member_add(partner=lab, user=quinn, actor=alice)
        publish_terms(alice, "v1", pat)
        grant = make_grant(lab, size, alice)
        move(size, Stage.PARTNERS, requester=alice, approvers=[bob])
    with freeze_time(start + timedelta(days=1)):
        partners.partner_member_remove(member=lab.members.get(user=quinn), actor=alice)
    with freeze_time(start + timedelta(days=2)):
        grants.grant_revoke(grant=grant, actor=alice, reason="The agreement ended.")

    revision = size.revisions.get()
    early = _state(api, dora, start + timedelta(hours=12))
    [row] = [r for r in early["revisions"] if r["model"] == size.slug]
    assert (row["revision"], row["stage"]) == (revision.revision, "partners")
    [organisation] = row["download"]["organisations"]
    assert organisation["name"] == lab.name and organisation["grant_id"] == grant.pk
    assert organisation["members"] == [{"username": "pat", "terms_version": "v1"},
                                       {"username": "quinn", "terms_version": None}]

    after_leaving = _state(api, dora, start + timedelta(days=1, hours=12))
    [row] = [r for r in after_leaving["revisions"] if r["model"] == size.slug]
    assert [m["username"] for m in row["download"]["organisations"][0]["members"]] == ["pat"]

    after_revoking = _state(api, dora, start + timedelta(days=2, hours=12))
    [row] = [r for r in after_revoking["revisions"] if r["model"] == size.slug]
    assert row["download"]["organisations"] == []

    before = _state(api, dora, start - timedelta(days=1))
    assert [r for r in before["revisions"] if r["model"] == size.slug] == []  # it did not exist yet


def test_a_deactivated_organisation_is_not_listed_for_the_time_it_was_inactive(api, size, alice, bob, dora, pat):
    start = timezone.now()
    with freeze_time(start):
        lab = make_partner(alice, pat)
        make_grant(lab, size, alice)
        move(size, Stage.PARTNERS, requester=alice, approvers=[bob])
    with freeze_time(start + timedelta(days=1)):
        partners.partner_set_active(partner=lab, active=False, actor=alice, reason="Agreement lapsed.")
    with freeze_time(start + timedelta(days=2)):
        partners.partner_set_active(partner=lab, active=True, actor=alice, reason="Renewed.")
    names = [[o["name"] for o in r["download"]["organisations"]]
             for when in (start + timedelta(hours=1), start + timedelta(days=1, hours=1), start + timedelta(days=3))
             for r in _state(api, dora, when)["revisions"] if r["model"] == size.slug]
    assert names == [[lab.name], [], [lab.name]]
