"""Browser tests: Debian's chromium driven by Playwright, the release tests' partner member and eager Celery, and
the steps every journey shares (a page, signing in to the admin or the portal)."""

import os
import re
from pathlib import Path

import pytest

from tests.releases.conftest import eager_celery, pat  # noqa: F401

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 15_000
needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no browser: {CHROMIUM} is missing "
                                                                  "(scripts/test.sh installs Debian's chromium)")


@pytest.fixture
def shots(request) -> Path:
    root = Path(os.environ.get("STAGEGATE_TEST_ARTIFACTS") or Path(__file__).resolve().parents[2] / "test-artifacts")
    folder = root / "browser" / request.node.name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def browser(monkeypatch):
    from django.db import connections
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop running in this thread; the ORM calls between pages are safe.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
            # The ORM's connections are context-local: those opened under Playwright's loop are closed here,
            # or the test database could not be dropped at the end of the session.
            connections.close_all()


def open_page(browser, base: str):
    page = browser.new_context(base_url=base, viewport={"width": 1280, "height": 900}).new_page()
    page.set_default_timeout(TIMEOUT_MS)
    return page


def admin_login(browser, base: str, username: str):
    page = open_page(browser, base)
    page.goto("/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", f"pw-{username}")
    page.click("input[type=submit]")
    page.wait_for_url(re.compile(r"/admin/$"))
    return page


def portal_login(browser, base: str, username: str, password: str | None = None):
    page = open_page(browser, base)
    page.goto("/portal/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password or f"pw-{username}")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/portal/$"))
    return page
