"""Production settings on the wire: HSTS, same-origin referrers, secure cookies, CSRF on every session endpoint."""

import json
import subprocess
import sys

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from knox.auth import TokenAuthentication as KnoxTokenAuthentication
from rest_framework.authentication import SessionAuthentication
from rest_framework.settings import api_settings

from tests.config.test_settings import PRODUCTION_ENV, ROOT

# Runs under production settings in a subprocess (settings are read once per process). None of these
# requests touches the database: the answers come from middleware, the login form and the CSRF check.
_PROBE = r"""
import json, django
django.setup()
from django.test import Client
host = {"HTTP_HOST": "stagegate.example.org"}
out = {}
plain = Client().get("/healthz", **host)
out["redirect"] = [plain.status_code, plain.headers.get("Location")]
ok = Client().get("/healthz", secure=True, **host)
out["healthz"] = [ok.status_code, dict(ok.headers)]
login = Client().get("/portal/login/", secure=True, **host)
cookie = login.cookies.get("csrftoken")
out["login"] = [login.status_code, dict(login.headers), {k: cookie[k] for k in ("secure", "samesite")} if cookie else None]
csrf = Client(enforce_csrf_checks=True).post("/portal/login/", {"username": "x", "password": "y"}, secure=True, **host)
out["login_without_csrf"] = csrf.status_code
admin = Client(enforce_csrf_checks=True).post("/admin/login/", {"username": "x", "password": "y"}, secure=True, **host)
out["admin_without_csrf"] = admin.status_code
from django.conf import settings
out["settings"] = {k: getattr(settings, k) for k in ("SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE",
    "SESSION_COOKIE_HTTPONLY", "STAGEGATE_SECOND_FACTOR", "AXES_FAILURE_LIMIT")}
out["botocore_level"] = settings.LOGGING["loggers"]["botocore"]["level"]
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def probe() -> dict:
    import os

    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **PRODUCTION_ENV,
           "LOG_LEVEL": "DEBUG"}
    result = subprocess.run([sys.executable, "-c", _PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_plain_http_is_redirected_to_https(probe):
    status, location = probe["redirect"]
    assert status == 301 and location == "https://stagegate.example.org/healthz"


def test_responses_carry_hsts_same_origin_referrer_nosniff_and_deny_framing(probe):
    status, headers = probe["healthz"]
    assert status == 200
    assert headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    assert headers["Referrer-Policy"] == "same-origin"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"


def test_the_login_page_sets_a_secure_csrf_cookie_and_a_same_origin_referrer(probe):
    status, headers, cookie = probe["login"]
    assert status == 200
    assert headers["Referrer-Policy"] == "same-origin"
    assert cookie is not None and cookie["secure"] is True and cookie["samesite"] == "Lax"
    settings = probe["settings"]
    assert settings["SESSION_COOKIE_SECURE"] and settings["CSRF_COOKIE_SECURE"] and settings["SESSION_COOKIE_HTTPONLY"]


def test_session_logins_without_a_csrf_token_are_refused(probe):
    assert probe["login_without_csrf"] == 403
    assert probe["admin_without_csrf"] == 403


def test_production_turns_on_the_second_factor_and_login_lockout(probe):
    assert probe["settings"]["STAGEGATE_SECOND_FACTOR"] is True
    assert probe["settings"]["AXES_FAILURE_LIMIT"] == 5


def test_botocore_stays_at_warning_even_when_the_log_level_is_debug(probe):
    # botocore logs signed request URLs and Authorization headers at DEBUG.
    assert probe["botocore_level"] == "WARNING"


def _views(resolver: URLResolver, prefix: str = ""):
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            yield from _views(entry, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), entry.callback


def test_every_session_endpoint_keeps_the_csrf_check():
    """Only DRF views are exempt from Django's CSRF middleware, and DRF's SessionAuthentication enforces it."""
    exempt = []
    for route, callback in _views(get_resolver()):
        view_class = getattr(callback, "cls", None)
        if view_class is not None and hasattr(view_class, "authentication_classes"):
            classes = view_class.authentication_classes or api_settings.DEFAULT_AUTHENTICATION_CLASSES
            # Cookie-based classes must be SessionAuthentication (which calls enforce_csrf) unaltered; the only
            # other kind allowed is the header token, which a browser never sends on its own.
            for cls in classes:
                if issubclass(cls, SessionAuthentication):
                    assert cls.enforce_csrf is SessionAuthentication.enforce_csrf, route
                else:
                    assert issubclass(cls, KnoxTokenAuthentication), (route, cls)
            continue
        if getattr(callback, "csrf_exempt", False):
            exempt.append(route)
    assert exempt == []


@pytest.mark.django_db
def test_the_api_refuses_a_session_post_without_a_csrf_token(alice, size):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = client.post(f"/api/v1/models/{size.slug}/stage-requests/", {"to_stage": "partners"},
                           content_type="application/json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
