"""The second factor on governance: with STAGEGATE_SECOND_FACTOR on (production), every governance API call that
changes something (stage requests and their decisions, reviews, jobs) needs one of

- a session verified by an authenticator code at the admin's login (django-otp),
- an API token created with a code (a verified token: `POST /api/v1/tokens/` with `otp_token`), or
- the current code with the call: `otp_token` in the body or the `X-Stagegate-OTP` header.

The admin as a whole asks for a verified session (config/admin_site.py). Reading needs no second factor.
"""

from django.conf import settings
from django_otp import match_token
from drf_spectacular.utils import OpenApiParameter
from knox.models import AuthToken
from rest_framework.permissions import SAFE_METHODS, BasePermission

from config.errors import DomainError

OTP_HEADER = "X-Stagegate-OTP"
OTP_PARAMETER = OpenApiParameter(
    OTP_HEADER, location=OpenApiParameter.HEADER, required=False,
    description="The current code of your TOTP device, where the server asks for a second factor "
                "(or send it as `otp_token` in the body).")


class SecondFactorRequired(DomainError):
    code = "second_factor_required"
    http_status = 403


def code_matches(user, code: str | None) -> bool:
    """Whether `code` is the current code of one of `user`'s devices (each code works once)."""
    return bool(code) and user.is_authenticated and match_token(user, str(code).strip()) is not None


def session_verified(request) -> bool:
    is_verified = getattr(request.user, "is_verified", None)
    return callable(is_verified) and is_verified()


def second_factor_require(request, *, token: str | None = None) -> None:
    """Raise SecondFactorRequired unless the setting is off or the caller passed a second factor (see above)."""
    if not settings.STAGEGATE_SECOND_FACTOR or session_verified(request):
        return
    auth = getattr(request, "auth", None)
    if isinstance(auth, AuthToken) and getattr(getattr(auth, "label", None), "verified", False):
        return
    if code_matches(request.user, token or request.META.get("HTTP_X_STAGEGATE_OTP")):
        return
    raise SecondFactorRequired(
        "This needs a second factor: sign in to the admin with your authenticator code, use a token created "
        f"with one, or send the current code as `otp_token` or the {OTP_HEADER} header.")


class SecondFactorForChanges(BasePermission):
    """DRF: calls that change something need the second factor (after the role check); reads do not."""

    def has_permission(self, request, view) -> bool:
        if request.method in SAFE_METHODS:
            return True
        body = request.data if hasattr(request.data, "get") else {}
        second_factor_require(request, token=body.get("otp_token"))
        return True
