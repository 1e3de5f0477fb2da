"""Per-key throttling: each key gets its own bucket per scope (``ingest`` is generous); requests with no key or
a bad one share one bucket per client address (``anon``, THROTTLE_ANON, default 60/min), counted before the
key is refused, so guessing keys or hammering without one is throttled too (429, never an unbounded 401 stream).

Rates come from ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]`` (env: THROTTLE_INGEST/READ/WRITE), read at
request time so a settings change applies without a restart of the class. A throttled request gets 429
with ``Retry-After``. Buckets live in the default cache: set CACHE_URL to Redis so that every worker
process shares them.
"""

from rest_framework import exceptions
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from .clients import client_ip, required_scope


class ApiKeyRateThrottle(SimpleRateThrottle):
    scope = None

    def __init__(self):  # rates are resolved per request, once the scope is known
        pass

    def allow_request(self, request, view):
        key = getattr(request, "auth", None)
        if key is None or not hasattr(key, "pk"):
            return True
        self.scope = required_scope(request, view)
        self.rate = api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)
        if self.rate is None:
            return True
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def get_cache_key(self, request, view):
        return f"throttle:{self.scope}:{request.auth.pk}"


class AnonymousRateThrottle(SimpleRateThrottle):
    """Requests that bring no key or a bad one, per client address (``core.auth.client_ip``)."""

    scope = "anon"

    def __init__(self):  # the rate is read per request, like the per-key buckets
        pass

    def allow_request(self, request, view):
        self.rate = api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)
        if self.rate is None:
            return True
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def get_cache_key(self, request, view):
        return f"throttle:anon:{client_ip(request)}"


def anonymous_request_count(request) -> None:
    """Count a request refused for its key (none, malformed, unknown or revoked); 429 once over the rate."""
    throttle = AnonymousRateThrottle()
    if not throttle.allow_request(request, None):
        raise exceptions.Throttled(wait=throttle.wait())
