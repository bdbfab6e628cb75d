"""A release to the public through the admin in a real browser (Debian's chromium, driven by Playwright).

Policy staff alice requests `partners → public`, bob and carol approve; the public size page then shows the
new stage and its history entry, and partner member pat sees his grant in the portal. A screenshot of each
step goes to $STAGEGATE_TEST_ARTIFACTS/browser/ (default: test-artifacts/browser/ at the repository root).
"""

import re
from pathlib import Path

import pytest

from registry.models import ModelSize
from releases.governance.factors import FACTORS
from releases.models import StageChangeRequest
from tests.browser.conftest import TIMEOUT_MS, admin_login, needs_chromium, open_page
from tests.releases.conftest import make_grant, make_partner, make_size, move, publish_terms

PUBLIC_RATIONALE = "Six months of partner research found no misuse that the smaller public sizes do not allow."
RATIONALE = "Partners' red-teaming and detection results show the risk at this size is now acceptable."

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    needs_chromium,
]


@pytest.fixture
def partners_size(alice, bob, pat):
    """A size at `partners` (moved there by the services), pat's lab holding an active grant for it."""
    size = make_size("mini-3m")
    partner = make_partner(alice, pat)
    publish_terms(alice, "v1", pat)
    make_grant(partner, size, alice, days=180)
    move(size, "partners", requester=alice, approvers=[bob])
    return size


def _approve(page, request: StageChangeRequest, shots: Path, step: str) -> None:
    page.goto(f"/admin/releases/stagechangerequest/{request.pk}/change/")
    page.screenshot(path=shots / f"{step}-request.png", full_page=True)
    page.click("form.decision-buttons a:has-text('Approve')")
    page.fill("textarea[name=comment]", "Checked the files, the evaluation and the rationale.")
    page.check("input[name=confirm]")
    page.click("input[type=submit][value=Approve]")
    page.wait_for_selector("ul.messagelist")
    page.screenshot(path=shots / f"{step}-approved.png", full_page=True)
    messages = page.inner_text("ul.messagelist")
    assert f"You approved request #{request.pk}" in messages, messages


def test_staff_release_a_size_to_the_public_and_a_partner_sees_its_grant(
    live_server, browser, partners_size, alice, bob, carol, pat, shots
):
    size, base = partners_size, live_server.url

    # alice files the request in the admin's request form, every release factor assessed.
    page = admin_login(browser, base, "alice")
    page.goto(f"/admin/releases/stagechangerequest/add/?model_size={size.pk}")
    page.select_option("#id_to_stage", "public")
    page.fill("#id_rationale", RATIONALE)
    page.fill("#id_public_rationale", PUBLIC_RATIONALE)
    for key in FACTORS:
        page.fill(f"#id_factor_{key}", f"Assessed for the public release: {key.replace('_', ' ')}.")
    page.screenshot(path=shots / "1-alice-request-form.png", full_page=True)
    page.click("input[type=submit][value='File request']")
    page.wait_for_url(re.compile(r"/admin/releases/stagechangerequest/\d+/change/$"))
    page.screenshot(path=shots / "2-alice-request-filed.png", full_page=True)
    request = StageChangeRequest.objects.get(model_size=size, to_stage="public")
    assert request.status == StageChangeRequest.Status.PENDING and request.requested_by == alice
    assert request.approvals_required == 2 and set(request.factors) == set(FACTORS)
    assert f"Request #{request.pk} filed" in page.inner_text("ul.messagelist")

    # bob approves: one of two; carol's approval completes it and applies the change.
    _approve(admin_login(browser, base, "bob"), request, shots, "3-bob")
    request.refresh_from_db()
    size.refresh_from_db()
    assert request.status == StageChangeRequest.Status.PENDING and size.stage == "partners"
    _approve(admin_login(browser, base, "carol"), request, shots, "4-carol")
    request.refresh_from_db()
    assert request.status == StageChangeRequest.Status.APPLIED
    assert ModelSize.objects.get(pk=size.pk).stage == "public"

    # Anyone: the public size page shows the new stage and the history entry with the public rationale.
    page = open_page(browser, base)
    page.goto(f"/models/{size.slug}/")
    page.screenshot(path=shots / "5-public-size-page.png", full_page=True)
    assert page.inner_text("h1 .stage") == "Public"
    history = page.locator("ol.timeline li").all_inner_texts()
    assert len(history) == 2 and "Partners → Public" in history[-1] and PUBLIC_RATIONALE in history[-1]
    assert RATIONALE not in page.content()  # the internal rationale stays internal

    # pat signs in to the partner portal and sees his lab's grant.
    page = open_page(browser, base)
    page.goto("/portal/login/")
    page.fill("#id_username", "pat")
    page.fill("#id_password", "pw-pat")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/portal/$"))
    page.screenshot(path=shots / "6-pat-portal.png", full_page=True)
    grant = page.locator("section.grant")
    assert grant.count() == 1
    assert size.display_name in grant.locator("h3").inner_text()
    assert grant.locator(".grant-state").inner_text() == "active"


def test_the_portal_fits_a_phone_and_a_partner_downloads_from_the_size_page(live_server, browser, alice, bob, pat,
                                                                             s3, tmp_path, shots):
    """Issue #20, defects 1 and 13: at 390 px the portal scrolled sideways; the size page's file links
    answered 405."""
    from tests.releases.conftest import upload

    size = make_size("mini-3m")
    upload(size, tmp_path)
    partner = make_partner(alice, pat)
    publish_terms(alice, "v1", pat)
    make_grant(partner, size, alice, days=180, quota_links=3, quota_period_s=86400)
    move(size, "partners", requester=alice, approvers=[bob])
    page = browser.new_context(base_url=live_server.url, viewport={"width": 390, "height": 844},
                               accept_downloads=True).new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto("/portal/login/")
    page.fill("#id_username", "pat")
    page.fill("#id_password", "pw-pat")
    page.click("button[type=submit], input[type=submit]")
    page.wait_for_url(re.compile(r"/portal/$"))
    page.screenshot(path=shots / "portal-390.png", full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert "0 of 3 used" in page.inner_text("main")
    with page.expect_download():
        page.click("form.download button")
    page.wait_for_selector("text=1 of 3 used")  # defect 11: the counts were stale until a manual reload
    page.goto(f"/models/{size.slug}/")
    with page.expect_response(lambda r: "/portal/files/" in r.url) as answer:
        page.click("form.inline button")
    assert answer.value.status == 302
