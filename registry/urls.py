from django.urls import path

from registry import views

urlpatterns = [
    path("models/", views.ModelListView.as_view(), name="model-list"),
    path("models/<slug:slug>/", views.ModelDetailView.as_view(), name="model-detail"),
]
