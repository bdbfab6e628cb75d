from django.urls import path

from releases import views

urlpatterns = [
    path("models/<slug:slug>/manifest/", views.ModelManifestView.as_view(), name="model-manifest"),
    path("models/<slug:slug>/files/<str:filename>/link/", views.ModelFileLinkView.as_view(), name="model-file-link"),
    path("models/<slug:slug>/files/<str:filename>", views.ModelFileView.as_view(), name="model-file"),
    path("models/<slug:slug>/history/", views.ModelHistoryView.as_view(), name="model-history"),
    path("models/<slug:slug>/stage-requests/", views.ModelStageRequestsView.as_view(), name="model-stage-requests"),
    path("models/<slug:slug>/reviews/", views.ModelReviewView.as_view(), name="model-reviews"),
    path("stage-requests/", views.StageRequestListView.as_view(), name="stage-request-list"),
    path("stage-requests/<int:request_id>/", views.StageRequestDetailView.as_view(), name="stage-request-detail"),
    path("stage-requests/<int:request_id>/approve/", views.StageRequestApproveView.as_view(),
         name="stage-request-approve"),
    path("stage-requests/<int:request_id>/reject/", views.StageRequestRejectView.as_view(),
         name="stage-request-reject"),
    path("stage-requests/<int:request_id>/cancel/", views.StageRequestCancelView.as_view(),
         name="stage-request-cancel"),
    path("release-state/", views.ReleaseStateView.as_view(), name="release-state"),
]
