"""Per-key throttling: each key gets its own bucket per scope (``ingest`` is generous)."""

from rest_framework.throttling import SimpleRateThrottle

from .auth import required_scope


class ApiKeyRateThrottle(SimpleRateThrottle):
    def allow_request(self, request, view):
        key = getattr(request, "auth", None)
        if key is None:
            return True
        self.scope = required_scope(request, view)
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def get_rate(self):
        if not getattr(self, "scope", None):
            return None
        return super().get_rate()

    def get_cache_key(self, request, view):
        return f"throttle:{self.scope}:{request.auth.pk}"
