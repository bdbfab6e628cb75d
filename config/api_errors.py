"""Maps domain errors and DRF's own exceptions to JSON bodies that name the problem."""

from django.http import Http404, JsonResponse
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from config.errors import DomainError

_DRF_CODES = {
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.Throttled: "rate_limited",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.ParseError: "malformed_request",
    exceptions.NotAcceptable: "not_acceptable",
}


class ErrorOutput(serializers.Serializer):
    """The body of every error answer, for the OpenAPI schema."""

    error = serializers.CharField(help_text="Machine-readable reason, e.g. no_grant, grant_revoked, quota_exhausted.")
    detail = serializers.CharField()
    retry_after_s = serializers.IntegerField(required=False, help_text="Only with quota_exhausted (429).")


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, DomainError):
        return Response(exc.as_json(), status=exc.http_status, headers=getattr(exc, "headers", None))
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        response.data = {"error": "invalid", "detail": "The request is not valid.", "fields": response.data}
    else:
        code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), "error")
        detail = response.data.get("detail", str(exc)) if isinstance(response.data, dict) else str(exc)
        response.data = {"error": code, "detail": str(detail)}
    return response


def json_not_found(request, exception=None) -> JsonResponse:
    """404 for URLs that match no route: JSON under /api/, Django's page elsewhere."""
    if request.path.startswith("/api/") or request.path.startswith("/gpt-2/"):
        return JsonResponse({"error": "not_found", "detail": "No such URL."}, status=status.HTTP_404_NOT_FOUND)
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)
