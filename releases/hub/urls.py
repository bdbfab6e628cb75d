"""The Hub protocol's routes, at the site's root as the clients expect them under HF_ENDPOINT
(`/api/models/…`, `/api/datasets/…`, `/<repo>/resolve/…`, `/datasets/<repo>/resolve/…`)."""

from django.urls import path

from releases.hub import views
from releases.hub.repos import DATASET, MODEL

REPO = "<str:namespace>/<str:name>"


def _api(kind: str, prefix: str) -> list:
    return [
        path(f"api/{prefix}/{REPO}", views.RepoInfoView.as_view(kind=kind), name=f"hub-{kind}-info"),
        path(f"api/{prefix}/{REPO}/revision/<path:revision>", views.RepoInfoView.as_view(kind=kind),
             name=f"hub-{kind}-revision"),
        path(f"api/{prefix}/{REPO}/tree/<str:revision>", views.RepoTreeView.as_view(kind=kind),
             name=f"hub-{kind}-tree"),
        path(f"api/{prefix}/{REPO}/tree/<str:revision>/<path:path>", views.RepoTreeView.as_view(kind=kind),
             name=f"hub-{kind}-tree-path"),
        path(f"api/{prefix}/{REPO}/paths-info/<str:revision>", views.PathsInfoView.as_view(kind=kind),
             name=f"hub-{kind}-paths-info"),
    ]


urlpatterns = [
    *_api(MODEL, "models"),
    *_api(DATASET, "datasets"),
    path(f"datasets/{REPO}/resolve/<str:revision>/<path:filename>", views.DatasetResolveView.as_view(),
         name="hub-dataset-resolve"),
    path(f"{REPO}/resolve/<str:revision>/<path:filename>", views.ResolveView.as_view(), name="hub-model-resolve"),
]
