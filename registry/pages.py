"""Public HTML pages of the registry."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from registry import selectors


def home(request: HttpRequest) -> HttpResponse:
    sizes = selectors.model_size_list(user=request.user)
    families: dict = {}
    for size in sizes:
        families.setdefault(size.family, []).append(size)
    return render(request, "public/home.html", {"families": families})
