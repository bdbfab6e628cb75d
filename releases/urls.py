"""Routes of the release API (mounted under /api/v1/) and of the datasets' compatibility path (at /gpt-2/)."""

from django.urls import path, re_path

from releases.access import member_views as member
from releases.access import organisation_views as org
from releases.access import views as access
from releases.audit import views as audit
from releases.governance import views as governance

urlpatterns = [
    # downloads: who may have what (releases/access/)
    path("models/<slug:slug>/manifest/", access.ModelManifestView.as_view(), name="model-manifest"),
    path("models/<slug:slug>/revisions/", access.ModelRevisionsView.as_view(), name="model-revisions"),
    path("models/<slug:slug>/files/<str:filename>/link/", access.ModelFileLinkView.as_view(), name="model-file-link"),
    path("models/<slug:slug>/files/<str:filename>", access.ModelFileView.as_view(), name="model-file"),
    path("datasets/<slug:name>/<str:split>/link/", access.DatasetSplitLinkView.as_view(), name="dataset-split-link"),
    path("tokens/", access.TokenListCreateView.as_view(), name="token-list"),
    # A token's public prefix is hex: anything else (a NUL byte, say) never reaches a query.
    re_path(r"^tokens/(?P<token_key>[0-9A-Za-z]{1,64})/revoke/$", access.TokenRevokeView.as_view(),
            name="token-revoke"),
    # a partner member's own grants, access requests and terms (releases/access/member_views.py)
    path("grants/", member.GrantListView.as_view(), name="grant-list"),
    path("access-requests/", member.AccessRequestListCreateView.as_view(), name="access-request-list"),
    path("access-questions/", member.AccessQuestionListView.as_view(), name="access-question-list"),
    path("access-requests/<int:request_id>/withdraw/", member.AccessRequestWithdrawView.as_view(),
         name="access-request-withdraw"),
    path("terms/", member.TermsView.as_view(), name="terms"),
    path("terms/accept/", member.TermsAcceptView.as_view(), name="terms-accept"),
    # a partner admin's organisation (releases/access/organisation_views.py)
    path("organisation/", org.OrganisationView.as_view(), name="organisation"),
    path("organisation/invitations/", org.InvitationCreateView.as_view(), name="organisation-invitation-create"),
    path("organisation/invitations/<int:invitation_id>/cancel/", org.InvitationCancelView.as_view(),
         name="organisation-invitation-cancel"),
    path("organisation/members/<int:member_id>/remove/", org.MemberRemoveView.as_view(),
         name="organisation-member-remove"),
    path("organisation/members/<int:member_id>/tokens/revoke/", org.MemberTokensRevokeView.as_view(),
         name="organisation-member-tokens-revoke"),
    path("organisation/usage/", org.UsageView.as_view(), name="organisation-usage"),
    # release decisions (releases/governance/)
    path("models/<slug:slug>/history/", governance.ModelHistoryView.as_view(), name="model-history"),
    path("models/<slug:slug>/stage-requests/", governance.ModelStageRequestsView.as_view(),
         name="model-stage-requests"),
    path("models/<slug:slug>/revisions/<str:revision>/purge/", governance.RevisionPurgeView.as_view(),
         name="model-revision-purge"),
    path("models/<slug:slug>/reviews/", governance.ModelReviewView.as_view(), name="model-reviews"),
    path("datasets/<slug:name>/stage-requests/", governance.DatasetStageRequestsView.as_view(),
         name="dataset-stage-requests"),
    path("stage-requests/", governance.StageRequestListView.as_view(), name="stage-request-list"),
    path("stage-requests/<int:request_id>/", governance.StageRequestDetailView.as_view(),
         name="stage-request-detail"),
    path("stage-requests/<int:request_id>/approve/", governance.StageRequestApproveView.as_view(),
         name="stage-request-approve"),
    path("stage-requests/<int:request_id>/reject/", governance.StageRequestRejectView.as_view(),
         name="stage-request-reject"),
    path("stage-requests/<int:request_id>/cancel/", governance.StageRequestCancelView.as_view(),
         name="stage-request-cancel"),
    path("release-state/", governance.ReleaseStateView.as_view(), name="release-state"),
    # the audit trail's signed checkpoints (releases/audit/)
    path("audit/checkpoints/", audit.CheckpointListView.as_view(), name="audit-checkpoints"),
    path("audit/public-key/", audit.PublicKeyView.as_view(), name="audit-public-key"),
    path("audit/events/<int:event_id>/proof/", audit.EventProofView.as_view(), name="audit-event-proof"),
]

compat_urlpatterns = [
    path("output-dataset/v1/<str:filename>", access.CompatDatasetFileView.as_view(), name="compat-dataset-file"),
]
