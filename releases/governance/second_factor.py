"""The second factor on release decisions: with STAGEGATE_APPROVAL_REQUIRES_OTP on (production), policy staff
approve or reject a stage change only from a TOTP-verified session (django-otp) or with a current `otp_token`.
"""

from django.conf import settings
from django_otp import match_token

from config.errors import DomainError


class SecondFactorRequired(DomainError):
    code = "second_factor_required"
    http_status = 403


def second_factor_require(request, *, token: str | None = None) -> None:
    """Raise SecondFactorRequired unless the setting is off, the session is OTP-verified or `token` matches."""
    if not settings.STAGEGATE_APPROVAL_REQUIRES_OTP:
        return
    user = request.user
    is_verified = getattr(user, "is_verified", None)
    if callable(is_verified) and is_verified():
        return
    if token and user.is_authenticated and match_token(user, str(token).strip()) is not None:
        return
    raise SecondFactorRequired(
        "Release decisions need a second factor: sign in to the admin with your authenticator code, or send "
        "`otp_token` with the current code of your TOTP device."
    )
