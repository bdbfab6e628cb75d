"""Liveness: a trivial JSON answer that touches nothing (load balancers; the baseline of bench_links_load)."""

from django.http import JsonResponse
from django.views.decorators.http import require_GET


@require_GET
def healthz(request) -> JsonResponse:
    return JsonResponse({"status": "ok"})
