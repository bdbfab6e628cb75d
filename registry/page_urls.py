"""Routes of the public pages of models, training runs and datasets (mounted at / by config/urls.py)."""

from django.urls import path

from registry import pages
from registry.datasets import pages as dataset_pages

urlpatterns = [
    path("models/<slug:slug>/", pages.size_page, name="size-page"),
    path("runs/<int:run_id>/", pages.run_page, name="run-page"),
    path("runs/<int:run_id>/loss-curve.svg", pages.run_loss_plot, name="run-loss-plot"),
    path("datasets/", dataset_pages.catalogue, name="dataset-catalogue"),
    path("datasets/detection.svg", dataset_pages.detection_plot, name="dataset-detection-plot"),
    path("datasets/removal/", dataset_pages.removal_request, name="dataset-removal"),
    path("datasets/removal/sent/", dataset_pages.removal_request_sent, name="dataset-removal-sent"),
    path("datasets/<slug:name>/", dataset_pages.dataset_page, name="dataset-page"),
    path("datasets/<slug:name>/plots/<str:kind>.svg", dataset_pages.dataset_plot, name="dataset-plot"),
]
