"""Usage per organisation, size, revision and day (issue #20): the admin report, its CSV and the portal's."""

import csv
import io

import pytest
from django.test import Client

from releases.access import links, partners
from releases.models import IssuedLink, PartnerMember
from tests.releases.conftest import make_grant, make_partner, move, publish_terms, upload

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


@pytest.fixture
def issued(s3, size, alice, bob, pat, django_user_model, tmp_path):
    """pat's lab takes three links and olga's lab one; an anonymous public-size link is not theirs."""
    upload(size, tmp_path)
    move(size, "partners", requester=alice, approvers=[bob])
    lab = make_partner(alice, pat)
    olga = django_user_model.objects.create_user("olga", password="x")
    other = make_partner(alice, olga, name="Other Lab")
    publish_terms(alice, "v1", pat, olga)
    make_grant(lab, size, alice)
    make_grant(other, size, alice)
    for user in (pat, pat, pat, olga):
        links.link_issue(user=user, size=size, filename="model.safetensors")
    return {"lab": lab, "other": other}


def _csv(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def test_the_usage_csv_of_a_partner_matches_its_issued_links(issued, alice):
    staff = Client()
    staff.force_login(alice)
    answer = staff.get("/admin/releases/usage/", {"partner": issued["lab"].pk, "format": "csv"})
    assert answer["Content-Type"].startswith("text/csv")
    rows = _csv(answer.content.decode())
    mine = IssuedLink.objects.filter(partner=issued["lab"])
    assert sum(int(row["links"]) for row in rows) == mine.count() == 3
    assert sum(int(row["bytes"]) for row in rows) == sum(link.bytes for link in mine)
    assert {row["partner"] for row in rows} == {"Example Security Lab"}
    assert {row["revision"] for row in rows} == {link.revision.revision for link in mine}
    page = staff.get("/admin/releases/usage/").content.decode()
    assert "Other Lab" in page and "Example Security Lab" in page
    assert 'href="/admin/releases/usage/"' in staff.get("/admin/releases/dashboard/").content.decode()


def test_partner_admins_see_their_own_organisations_usage_only(issued, alice, pat, rita, steve):
    member = Client()
    member.force_login(pat)
    assert member.get("/portal/usage.csv").status_code == 302  # a plain member: the portal says who may
    partners.partner_member_set_role(member=PartnerMember.objects.get(user=pat), role="admin", actor=alice)
    rows = _csv(member.get("/portal/usage.csv").content.decode())
    assert [(row["partner"], row["links"]) for row in rows] == [("Example Security Lab", "3")]
    page = member.get("/portal/organisation/").content.decode()
    assert '<td class="num">3</td>' in page and "Other Lab" not in page
    outsider = Client()
    outsider.force_login(rita)
    assert outsider.get("/portal/usage.csv").status_code == 302
    staff_without_role = Client()
    staff_without_role.force_login(steve)
    assert staff_without_role.get("/admin/releases/usage/").status_code == 403


def test_a_partner_name_that_looks_like_a_formula_is_written_as_text(db):
    from datetime import date

    from releases.access.usage import UsageRow, usage_csv

    rows = _csv(usage_csv([UsageRow(date(2026, 12, 1), '=HYPERLINK("http://x","y")', "mini-1m", "a" * 40, 1, 2),
                           UsageRow(date(2026, 12, 1), "-1+2", "mini-1m", "a" * 40, 1, 2)]))
    assert rows[0]["partner"] == "'=HYPERLINK(\"http://x\",\"y\")" and rows[1]["partner"] == "'-1+2"
