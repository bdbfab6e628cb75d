"""URL map: admin, the versioned API, its schema and docs, and the public site."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from config import health
from releases import urls as release_urls
from releases.governance import admin as governance_admin

handler404 = "config.api_errors.json_not_found"

urlpatterns = [
    path("admin/releases/dashboard/", governance_admin.governance_dashboard_view, name="releases-dashboard"),
    path("admin/releases/usage/", governance_admin.usage_view, name="releases-usage"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("web.api_urls")),
    path("api/v1/", include("workers.urls")),
    path("api/v1/", include("releases.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("healthz", health.healthz, name="healthz"),
    path("gpt-2/", include(release_urls.compat_urlpatterns)),
    # The Hugging Face Hub's read protocol, at the root as HF_ENDPOINT clients expect (releases/hub/).
    path("", include("releases.hub.urls")),
    path("", include("web.urls")),
]
