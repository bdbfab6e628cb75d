"""API tokens: created by their owner (or an operator's command), named, expiring, revocable. Knox stores them
hashed: the key is returned once and never recorded (audit rows carry only knox's public token_key prefix)."""

from datetime import timedelta

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from knox.models import AuthToken

from registry.models import ModelSize
from releases.access.errors import InvalidPartnerAction
from releases.access.models import TokenLabel
from releases.audit.chain import audit_record
from releases.outbox.delivery import webhooks_enqueue
from releases.roles import REVOKE_TOKENS, NotPermitted, can, governs

TOKEN_MAX_DAYS = 365


@transaction.atomic
def token_create(*, user, name: str, expires_days: int | None, actor, verified: bool = False,
                 scope: str = TokenLabel.Scope.DOWNLOAD, sizes: list[str] | None = None,
                 ip: str | None = None) -> tuple[AuthToken, str]:
    """A named token for `user`, created by `user` themself (portal, API) or by an operator's command on the
    server (actor None). Nobody else, superusers included: a key is someone's identity, so whoever could mint
    one for another account could act in that account's name (approve as them, download as them).

    Returns the token and its key; only a hash is stored, so the key can be shown this once only.
    expires_days 0 means no expiry (operators only); None means the default lifetime (REST_KNOX TOKEN_TTL).
    `verified`: the owner passed a second factor when creating it (the caller checks that).
    `scope`: a download token (the default) reaches only what downloading needs, optionally only `sizes`;
    a governance token reaches every call its owner may make, and only those who govern may have one.
    """
    if actor is not None and actor.pk != user.pk:
        raise NotPermitted("A token can be created only by its owner (or by an operator on the server).")
    if expires_days is not None and not 0 <= expires_days <= TOKEN_MAX_DAYS:
        raise InvalidPartnerAction(f"A token lasts 1 to {TOKEN_MAX_DAYS} days.", fields={"expires_days": ["Range."]})
    if expires_days == 0 and actor is not None:
        raise InvalidPartnerAction("Tokens created in the portal or admin must expire.")
    name = (name or "").strip()[:100] or f"{user.get_username()} token"
    scope, sizes = _scope_checked(user, scope, sizes or [])
    if expires_days is None:
        token, key = AuthToken.objects.create(user=user)
    else:
        token, key = AuthToken.objects.create(user=user, expiry=timedelta(days=expires_days) if expires_days else None)
    TokenLabel.objects.create(token=token, name=name, verified=verified, scope=scope, sizes=sizes)
    audit_record(actor=actor, action="token.created", target=user, ip=ip,
                 data={"token_key": token.token_key, "name": name, "verified": verified, "scope": scope,
                       "sizes": sizes, "expiry": token.expiry.isoformat() if token.expiry else None})
    webhooks_enqueue(event="token.created", payload={"user": user.get_username(), "token_key": token.token_key,
                                                     "name": name})
    return token, key


def _scope_checked(user, scope: str, sizes: list[str]) -> tuple[str, list[str]]:
    if scope not in TokenLabel.Scope.values:
        raise InvalidPartnerAction(f"Unknown scope {scope!r}.", fields={"scope": [str(TokenLabel.Scope.values)]})
    if scope == TokenLabel.Scope.GOVERNANCE:
        if not governs(user):
            raise NotPermitted("Only policy staff and operators may have governance tokens; ask for a download token.")
        if sizes:
            raise InvalidPartnerAction("Only download tokens are limited to sizes.", fields={"sizes": ["Not here."]})
    sizes = sorted({slug.strip() for slug in sizes if slug and slug.strip()})
    unknown = sorted(set(sizes) - set(ModelSize.objects.filter(slug__in=sizes).values_list("slug", flat=True)))
    if unknown:
        raise InvalidPartnerAction(f"No model size {', '.join(unknown)}.", fields={"sizes": unknown})
    return scope, sizes


def tokens_delete_expired(*, now=None) -> int:
    """Delete API tokens past their expiry (they authenticate nothing already); the number deleted."""
    now = now or timezone.now()
    deleted, _by_model = AuthToken.objects.filter(expiry__lt=now).delete()
    return deleted


@transaction.atomic
def token_revoke(*, token: AuthToken, actor, ip: str | None = None) -> None:
    """Delete the token: the next request that sends it is refused (401)."""
    if actor is not None and actor.pk != token.user_id and not can(actor, REVOKE_TOKENS):
        raise NotPermitted("Only the token's owner, or policy staff, may revoke it.")
    token_delete(token=token, actor=actor, ip=ip)


def token_delete(*, token: AuthToken, actor, ip: str | None = None, data: dict | None = None) -> None:
    """Delete and audit (the caller has checked who may: token_revoke, or a partner admin in organisation.py)."""
    label = TokenLabel.objects.filter(token=token).values_list("name", flat=True).first() or ""
    user, token_key = token.user, token.token_key
    token.delete()
    audit_record(actor=actor, action="token.revoked", target=user, ip=ip,
                 data={"token_key": token_key, "name": label, **(data or {})})
    webhooks_enqueue(event="token.revoked", payload={"user": user.get_username(), "token_key": token_key})


def live_tokens() -> QuerySet[AuthToken]:
    """Tokens that still authenticate (expired ones are deleted daily), newest first."""
    live = Q(expiry__isnull=True) | Q(expiry__gt=timezone.now())
    return AuthToken.objects.filter(live).select_related("label").order_by("-created")


def tokens_of(user) -> QuerySet[AuthToken]:
    return live_tokens().filter(user=user)
