"""Routes of the catalogue API (mounted under /api/v1/ by config/urls.py)."""

from django.urls import path

from web import catalogue

urlpatterns = [
    path("models/", catalogue.ModelListView.as_view(), name="model-list"),
    path("models/<slug:slug>/", catalogue.ModelDetailView.as_view(), name="model-detail"),
    path("datasets/", catalogue.DatasetListView.as_view(), name="dataset-list"),
    path("datasets/<slug:name>/", catalogue.DatasetDetailView.as_view(), name="dataset-detail"),
]
