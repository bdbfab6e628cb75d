"""API token authentication: knox's, without its sweep of the user's other tokens on every request."""

import binascii
from hmac import compare_digest

from django.utils import timezone
from drf_spectacular.contrib.knox_auth_token import KnoxTokenScheme
from knox.auth import TokenAuthentication as KnoxTokenAuthentication
from knox.crypto import hash_token
from knox.models import AuthToken
from knox.settings import CONSTANTS, knox_settings
from knox.signals import token_expired
from rest_framework.authentication import get_authorization_header
from rest_framework.exceptions import AuthenticationFailed

from releases.access.token_scopes import token_scope_check
from releases.audit.context import acting_token_set


class TokenAuthentication(KnoxTokenAuthentication):
    """`Authorization: Token <key>`, or `Bearer <key>` as Hugging Face clients send it. Knox deletes a user's
    other expired tokens on each request (one more query per call on the download path); an expired token is
    refused and deleted when it is used. The token used is named in every audit row the request writes
    (releases/audit/context.py)."""

    def authenticate(self, request):
        scheme, _, key = get_authorization_header(request).partition(b" ")
        if scheme.lower() not in (b"token", b"bearer"):
            return None  # another scheme, for another authenticator
        key = key.strip()
        try:
            key.decode("utf-8")
        except UnicodeDecodeError:
            raise AuthenticationFailed("Invalid token.") from None
        if not key or b" " in key:
            raise AuthenticationFailed("Invalid token header: send `Authorization: Token <key>` (or `Bearer <key>`).")
        user, token = self.authenticate_credentials(key)
        context = getattr(request, "parser_context", None) or {}
        token_scope_check(token, context.get("view"), context.get("kwargs") or {})
        return user, token

    def authenticate_credentials(self, token: bytes):
        """knox's check, reading the token's label (its scope, token_scopes.py) in the same query as the token
        and its user: one query less on every token request, the download path included."""
        key = token.decode("utf-8")
        candidates = AuthToken.objects.filter(token_key=key[:CONSTANTS.TOKEN_KEY_LENGTH]).select_related("user", "label")
        for auth_token in candidates:
            if self._cleanup_token(auth_token):
                continue
            try:
                digest = hash_token(key)
            except (TypeError, binascii.Error):
                raise AuthenticationFailed("Invalid token.") from None
            if compare_digest(digest, auth_token.digest):
                if knox_settings.AUTO_REFRESH and auth_token.expiry:
                    self.renew_token(auth_token)
                user, auth_token = self.validate_user(auth_token)
                acting_token_set(auth_token.token_key)
                return user, auth_token
        raise AuthenticationFailed("Invalid token.")

    def _cleanup_token(self, auth_token) -> bool:
        if auth_token.expiry is not None and auth_token.expiry < timezone.now():
            username = auth_token.user.get_username()
            auth_token.delete()
            token_expired.send(sender=self.__class__, username=username, source="auth_token")
            return True
        return False


class TokenScheme(KnoxTokenScheme):
    """The OpenAPI description of the scheme: knox's, for this subclass."""

    target_class = TokenAuthentication
