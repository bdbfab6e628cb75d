"""URL map: admin, the versioned API, its schema and docs, and the public pages."""

from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from config import health
from registry import pages
from registry.datasets import urls as dataset_urls
from releases import admin as releases_admin
from releases import pages as release_pages

handler404 = "config.api_errors.json_not_found"

if settings.STAGEGATE_APPROVAL_REQUIRES_OTP:
    # Staff with a TOTP device give its code when signing in to the admin, which verifies the session
    # for release decisions (releases/second_factor.py). Devices are added in the admin (TOTP devices).
    from django_otp.admin import OTPAdminAuthenticationForm

    admin.site.login_form = OTPAdminAuthenticationForm
    admin.site.login_template = "otp/admin111/login.html"

urlpatterns = [
    path("admin/releases/dashboard/", releases_admin.governance_dashboard_view, name="releases-dashboard"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("registry.urls")),
    path("api/v1/", include("workers.urls")),
    path("api/v1/", include("releases.urls")),
    path("api/v1/", include("registry.datasets.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("healthz", health.healthz, name="healthz"),
    path("gpt-2/", include(dataset_urls.compat_urlpatterns)),
    path("history/", release_pages.history, name="release-history"),
    path("portal/", include("releases.portal_urls")),
    path("", include("registry.page_urls")),
    path("", pages.home, name="home"),
]
