"""Rate limits of the anonymous endpoints that write (links to public sizes, dataset links, the compatibility
path, the removal form): per client (config/client_ip.py) for anonymous callers, per account (higher) for
signed-in researchers on the dataset endpoints.

Counters live in Django's cache (Redis, shared by every gunicorn worker). Rates are read from settings at
each request, so operators and tests can change them. A cache outage lets requests through (logged):
rate limiting must not take the datasets offline.
"""

import logging

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle

from config.client_ip import client_key

logger = logging.getLogger(__name__)


class _SettingsRateThrottle(SimpleRateThrottle):
    rate_setting = ""

    def __init__(self) -> None:  # the rate is resolved per request, not at import
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)

    def get_rate(self) -> str:
        return getattr(settings, self.rate_setting)

    def get_ident(self, request) -> str:
        # The client as config.client_ip counts it: X-Forwarded-For only through trusted proxies, IPv6 by /64.
        return client_key(request) or "unknown"

    def allow_request(self, request, view) -> bool:
        try:
            return super().allow_request(request, view)
        except Exception as exc:  # Redis unreachable: fail open
            logger.warning("rate limit not applied, cache unavailable: %s", type(exc).__name__)
            return True


class DatasetAnonThrottle(_SettingsRateThrottle):
    scope = "dataset_anon"
    rate_setting = "STAGEGATE_DATASET_RATE_ANON"

    def get_cache_key(self, request, view) -> str | None:
        if request.user and request.user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class DatasetUserThrottle(_SettingsRateThrottle):
    scope = "dataset_user"
    rate_setting = "STAGEGATE_DATASET_RATE_USER"

    def get_cache_key(self, request, view) -> str | None:
        if not (request.user and request.user.is_authenticated):
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}


DATASET_THROTTLES = [DatasetAnonThrottle, DatasetUserThrottle]


class LinkAnonThrottle(_SettingsRateThrottle):
    """Anonymous links to public sizes' files: each is recorded and audited, so their rate is bounded per client."""

    scope = "link_anon"
    rate_setting = "STAGEGATE_LINK_RATE_ANON"

    def get_cache_key(self, request, view) -> str | None:
        if request.user and request.user.is_authenticated:
            return None  # partners and staff: their grants' quotas and roles bound them
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class RemovalRequestThrottle(_SettingsRateThrottle):
    """The data-removal form: a few submissions per IP, against spam."""

    scope = "removal_request"
    rate_setting = "STAGEGATE_REMOVAL_RATE"

    def get_cache_key(self, request, view) -> str | None:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}
