"""Issue #20's journeys, each walked end to end in a real browser (Debian's chromium, driven by Playwright), and
every link on every page they visit followed: each must answer below 400 (redirects are not followed; a
redirect is an answer).

1. Policy staff: alice requests a stage change, bob comments, carol approves with a comment.
2. Partner admin pat invites nina, who creates her account, accepts the terms and downloads from the size page.
3. Researcher rita applies for her organisation to become a partner; alice accepts; rita is its partner admin.
4. A grant nears its end: the notice goes out, pat asks for a renewal, alice grants it and the end moves.
"""

import re
from datetime import timedelta
from urllib.parse import urljoin, urlsplit

import pytest
from django.utils import timezone

from registry.models import ModelSize
from releases.access import renewals
from releases.governance.factors import FACTORS
from releases.models import (
    AccessGrant,
    AccessRequest,
    OutboxMessage,
    PartnerApplication,
    PartnerMember,
    StageChangeRequest,
    StageRequestComment,
)
from tests.browser.conftest import admin_login, needs_chromium, open_page, portal_login
from tests.releases.conftest import make_grant, make_partner, make_size, move, publish_terms, upload

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    needs_chromium,
]

PASSWORD = "a-long-Passphrase-42"


class LinkChecker:
    """Follows every same-site link of each page visited, once per URL, with the page's own cookies."""

    def __init__(self, base: str) -> None:
        self.base, self.seen, self.bad = base, set(), []

    def check(self, page) -> None:
        hrefs = page.eval_on_selector_all("a[href]", "links => links.map(a => a.getAttribute('href'))")
        for href in hrefs:
            url = urljoin(page.url, href).split("#", 1)[0]
            if urlsplit(url).netloc != urlsplit(self.base).netloc or url in self.seen:
                continue
            self.seen.add(url)
            status = page.request.get(url, max_redirects=0).status
            if status >= 400:
                self.bad.append((page.url, url, status))

    def visit(self, page, path: str) -> None:
        page.goto(path)
        self.check(page)


@pytest.fixture
def links_checked(live_server):
    checker = LinkChecker(live_server.url)
    yield checker
    assert checker.seen, "no links were checked"
    assert not checker.bad, f"links answering 400 or more (page, link, status): {checker.bad}"


def test_staff_request_discuss_and_approve_with_a_comment(live_server, browser, links_checked, alice, bob, carol,
                                                          s3, tmp_path, shots):
    size = make_size("mini-3m")
    upload(size, tmp_path)
    base = live_server.url
    page = admin_login(browser, base, "alice")
    links_checked.check(page)  # the admin home
    links_checked.visit(page, f"/admin/releases/stagechangerequest/add/?model_size={size.pk}")
    page.select_option("#id_to_stage", "partners")
    page.fill("#id_rationale", "Partners' red-teaming needs the weights before any public decision.")
    for key in FACTORS:
        page.fill(f"#id_factor_{key}", f"Assessed for partners: {key.replace('_', ' ')}.")
    page.click("input[type=submit][value='File request']")
    page.wait_for_url(re.compile(r"/admin/releases/stagechangerequest/\d+/change/$"))
    links_checked.check(page)
    request = StageChangeRequest.objects.get(model_size=size)

    page = admin_login(browser, base, "bob")
    links_checked.visit(page, "/admin/releases/dashboard/")
    links_checked.visit(page, f"/admin/releases/stagechangerequest/{request.pk}/change/")
    page.fill("#comment-text", "Has the detection baseline been run on this size's samples?")
    page.click("#discussion input[type=submit]")
    page.wait_for_selector("ul.messagelist")
    assert StageRequestComment.objects.filter(request=request, author=bob).exists()

    page = admin_login(browser, base, "carol")
    links_checked.visit(page, f"/admin/releases/stagechangerequest/{request.pk}/change/")
    assert "Has the detection baseline been run" in page.inner_text("#content")
    page.click("form.decision-buttons a:has-text('Approve')")
    links_checked.check(page)
    page.fill("textarea[name=comment]", "Yes: the baseline is in the evidence above.")
    page.check("input[name=confirm]")
    page.click("input[type=submit][value=Approve]")
    page.wait_for_selector("ul.messagelist")
    page.screenshot(path=shots / "carol-approved.png", full_page=True)
    assert ModelSize.objects.get(pk=size.pk).stage == "partners"
    links_checked.visit(page, f"/admin/releases/stagechangerequest/{request.pk}/change/")
    assert "Yes: the baseline is in the evidence above." in page.inner_text("#content")
    links_checked.visit(page, "/history/")
    links_checked.visit(page, f"/models/{size.slug}/")


def test_a_partner_admin_invites_a_member_who_accepts_the_terms_and_downloads(
        live_server, browser, links_checked, alice, bob, pat, s3, tmp_path, shots):
    size = make_size("mini-3m")
    upload(size, tmp_path)
    move(size, "partners", requester=alice, approvers=[bob])
    lab = make_partner(alice, pat)
    PartnerMember.objects.filter(user=pat).update(role="admin")
    publish_terms(alice, "v1", pat)
    make_grant(lab, size, alice, days=180)
    base = live_server.url

    page = portal_login(browser, base, "pat")
    links_checked.check(page)
    page.click("#manage-organisation")
    links_checked.check(page)
    page.fill("#invite-email", "nina@example.org")
    page.click("#invite button")
    page.wait_for_selector("ul.messages")
    assert "Invitation sent to nina@example.org" in page.inner_text("ul.messages")
    links_checked.check(page)
    mail = OutboxMessage.objects.get(event="partner.member_invited")
    link = re.search(r"/portal/invitations/[\w-]+/", mail.body).group(0)

    page = open_page(browser, base)  # nina, signed out, follows the link from her email
    links_checked.visit(page, link)
    page.fill("#inv-username", "nina")
    page.fill("#inv-password", PASSWORD)
    page.fill("#inv-password-again", PASSWORD)
    page.click("#invitation-account button")
    page.wait_for_url(re.compile(r"/portal/$"))
    links_checked.check(page)
    page.click("#terms-to-accept ~ form button")
    page.wait_for_selector("#accepted-terms")
    links_checked.visit(page, f"/models/{size.slug}/")
    with page.expect_response(lambda r: "/portal/files/" in r.url) as answer:
        page.click("form.inline button")
    assert answer.value.status == 302 and "X-Amz-Signature=" in answer.value.headers["location"]
    page.screenshot(path=shots / "nina-downloads.png", full_page=True)
    assert PartnerMember.objects.current().get(user__username="nina").partner == lab


def test_a_researcher_applies_and_is_accepted_as_a_partner(live_server, browser, links_checked, alice, rita,
                                                           shots):
    publish_terms(alice, "v1")
    base = live_server.url
    page = portal_login(browser, base, "rita")
    links_checked.check(page)
    page.fill("#app-organisation", "Rita's Detection Institute")
    page.select_option("#app-kind", "research")
    page.fill("#app-contact-name", "Rita Researcher")
    page.fill("#app-contact-email", "rita@example.org")
    page.fill("#app-use", "Measuring how well detectors find the samples of each size.")
    page.check("input[name=agrees_to_terms]")
    page.click("#partner-application button")
    page.wait_for_selector("p.application")
    links_checked.check(page)
    application = PartnerApplication.objects.get()

    staff = admin_login(browser, base, "alice")
    links_checked.visit(staff, f"/admin/releases/partnerapplication/{application.pk}/change/")
    staff.click("form.decision-buttons button[value=accept_selected]")
    links_checked.check(staff)
    staff.fill("textarea[name=reason]", "A known detection group.")
    staff.check("input[name=confirm]")
    staff.click("input[type=submit].default")
    staff.wait_for_selector("ul.messagelist")
    assert PartnerApplication.objects.get().status == "accepted"

    links_checked.visit(page, "/portal/")
    assert "Rita's Detection Institute" in page.inner_text("main")
    page.click("#manage-organisation")
    links_checked.check(page)
    page.screenshot(path=shots / "rita-partner-admin.png", full_page=True)
    assert PartnerMember.objects.current().get(user=rita).role == "admin"


def test_a_grant_near_its_end_is_renewed(live_server, browser, links_checked, alice, bob, pat, s3, tmp_path, shots):
    size = make_size("mini-3m")
    upload(size, tmp_path)
    move(size, "partners", requester=alice, approvers=[bob])
    lab = make_partner(alice, pat)
    publish_terms(alice, "v1", pat)
    grant = make_grant(lab, size, alice, days=6)
    assert renewals.grant_expiry_notices_send() == [grant.pk]
    assert "pat@example.org" in OutboxMessage.objects.get(event="grant.expiring", channel="email").recipients
    base = live_server.url

    page = portal_login(browser, base, "pat")
    links_checked.check(page)
    page.fill(f"#renew-{grant.pk}", "The detector study runs three more months.")
    page.click(f"#grant-{grant.pk} form.renewal button")
    page.wait_for_selector("ul.messages")
    renewal = AccessRequest.objects.get(renewal_of=grant)

    staff = admin_login(browser, base, "alice")
    links_checked.visit(staff, "/admin/releases/dashboard/")
    links_checked.visit(staff, f"/admin/releases/accessrequest/{renewal.pk}/change/")
    staff.click("form.decision-buttons button[value=grant_selected]")
    staff.fill("input[name=expires_in_days]", "90")
    staff.fill("textarea[name=reason]", "The study needs the time.")
    staff.click("input[type=submit].default")
    staff.wait_for_selector("ul.messagelist")
    links_checked.check(staff)
    extended = AccessGrant.objects.get(pk=grant.pk)
    assert extended.expires_at > timezone.now() + timedelta(days=89)
    assert AccessRequest.objects.get(pk=renewal.pk).status == "granted"
    links_checked.visit(page, "/portal/")
    page.screenshot(path=shots / "pat-renewed.png", full_page=True)
    assert f"renew-{grant.pk}" not in page.content()  # no longer within its last 30 days
