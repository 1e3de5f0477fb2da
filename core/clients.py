"""Who is asking: the client's address and the scope a request needs (read by auth, throttles and the lockout)."""

from __future__ import annotations

from django.conf import settings
from rest_framework import permissions

__all__ = ["client_ip", "required_scope"]


def required_scope(request, view) -> str:
    scope = getattr(view, "required_scope", None)
    if scope:
        return scope
    return "read" if request.method in permissions.SAFE_METHODS else "write"


def client_ip(request) -> str:
    """The client's address: ``REMOTE_ADDR``, or the one ``NUM_PROXIES`` hops back in ``X-Forwarded-For``."""
    remote = request.META.get("REMOTE_ADDR", "")
    proxies = settings.NUM_PROXIES
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR")
    if not proxies or not forwarded:
        return remote
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    return hops[-min(proxies, len(hops))] if hops else remote
