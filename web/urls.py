"""Routes of the public site (mounted at / by config/urls.py): home, sizes, runs, datasets, history, portal."""

from django.urls import include, path

from web.pages import datasets, history, sizes, study

urlpatterns = [
    path("", sizes.home, name="home"),
    path("history/", history.history, name="release-history"),
    path("portal/", include("web.portal.urls")),
    path("models/<slug:slug>/", sizes.size_page, name="size-page"),
    path("runs/<int:run_id>/", sizes.run_page, name="run-page"),
    path("runs/<int:run_id>/loss-curve.svg", sizes.run_loss_plot, name="run-loss-plot"),
    path("datasets/", datasets.catalogue, name="dataset-catalogue"),
    path("datasets/detection.svg", datasets.detection_plot, name="dataset-detection-plot"),
    path("datasets/removal/", datasets.removal_request, name="dataset-removal"),
    path("datasets/removal/sent/", datasets.removal_request_sent, name="dataset-removal-sent"),
    path("datasets/<slug:name>/", datasets.dataset_page, name="dataset-page"),
    path("datasets/<slug:name>/plots/<str:kind>.svg", datasets.dataset_plot, name="dataset-plot"),
    path("study/", study.study_index, name="study-index"),
    path("study/<slug:name>/", study.study_page, name="study-page"),
    path("study/<slug:name>/plots/<str:kind>.svg", study.study_plot, name="study-plot"),
]
