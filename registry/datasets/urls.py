"""Routes of the dataset API (mounted under /api/v1/) and of the compatibility path (mounted at /gpt-2/)."""

from django.urls import path

from registry.datasets import views

urlpatterns = [
    path("datasets/", views.DatasetListView.as_view(), name="dataset-list"),
    path("datasets/<slug:name>/", views.DatasetDetailView.as_view(), name="dataset-detail"),
    path("datasets/<slug:name>/<str:split>/link/", views.DatasetSplitLinkView.as_view(), name="dataset-split-link"),
]

compat_urlpatterns = [
    path("output-dataset/v1/<str:filename>", views.CompatDatasetFileView.as_view(), name="compat-dataset-file"),
]
