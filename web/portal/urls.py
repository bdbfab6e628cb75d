"""Routes of the partner portal (mounted at /portal/ by config/urls.py)."""

from django.contrib.auth import views as auth_views
from django.urls import path, re_path

from web.portal import organisation as org
from web.portal import views as portal

urlpatterns = [
    path("", portal.home, name="portal-home"),
    path("login/", portal.PortalLoginView.as_view(), name="portal-login"),
    path("logout/", auth_views.LogoutView.as_view(next_page="portal-login"), name="portal-logout"),
    path("terms/accept/", portal.terms_accept, name="portal-terms-accept"),
    path("tokens/", portal.token_create, name="portal-token-create"),
    path("tokens/new/", portal.token_created, name="portal-token-created"),
    re_path(r"^tokens/(?P<token_key>[0-9A-Za-z]{1,64})/revoke/$", portal.token_revoke, name="portal-token-revoke"),
    path("access-requests/", portal.access_request_create, name="portal-access-request"),
    path("access-requests/<int:request_id>/withdraw/", portal.access_request_withdraw,
         name="portal-access-request-withdraw"),
    path("applications/", portal.partner_application_create, name="portal-partner-application"),
    path("usage.csv", org.usage_csv, name="portal-usage-csv"),
    path("organisation/", org.organisation_page, name="portal-organisation"),
    path("organisation/invitations/", org.invitation_create, name="portal-invitation-create"),
    path("organisation/invitations/<int:invitation_id>/cancel/", org.invitation_cancel,
         name="portal-invitation-cancel"),
    path("organisation/members/<int:member_id>/remove/", org.member_remove, name="portal-member-remove"),
    re_path(r"^organisation/members/(?P<member_id>[0-9]{1,18})/tokens/(?P<token_key>[0-9A-Za-z]{1,64})/revoke/$",
            org.member_token_revoke, name="portal-member-token-revoke"),
    re_path(r"^invitations/(?P<secret>[0-9A-Za-z_-]{1,128})/$", org.invitation_page, name="portal-invitation"),
    path("invitation/", org.invitation_resume, name="portal-invitation-resume"),
    path("grants/<int:grant_id>/renew/", portal.grant_renewal_request, name="portal-grant-renew"),
    path("files/<slug:slug>/<str:filename>", portal.file_download, name="portal-file-download"),
]
