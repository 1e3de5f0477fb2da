"""API key authentication (``Authorization: Bearer <key>``) and scope permissions.

Keys look like ``ll_<prefix>_<secret>``; the database keeps ``sha256(key)`` and the prefix only.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.utils import timezone
from rest_framework import authentication, exceptions, permissions

from .models import ApiKey

LAST_USED_RESOLUTION = timedelta(minutes=1)


def hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def api_key_create(*, name: str, scopes: list[str] | None = None) -> tuple[ApiKey, str]:
    """Create a key; returns the row and the raw key, which is never stored and cannot be shown again."""
    scopes = list(scopes) if scopes else [str(s) for s in ApiKey.ALL_SCOPES]
    valid = {str(s) for s in ApiKey.ALL_SCOPES}
    bad = [s for s in scopes if s not in valid]
    if bad:
        raise ValueError(f"unknown scope(s): {', '.join(bad)}; choose from {', '.join(sorted(valid))}")
    prefix = secrets.token_hex(4)
    raw = f"ll_{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey.objects.create(name=name, prefix=prefix, hashed_key=hash_key(raw), scopes=scopes)
    return key, raw


class ApiKeyUser:
    """The request.user of an API call: the key itself, authenticated."""

    is_authenticated = True
    is_anonymous = False
    is_staff = False

    def __init__(self, key: ApiKey):
        self.api_key = key
        self.pk = None
        self.username = f"api-key:{key.prefix}"

    def __str__(self) -> str:
        return self.username


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        parts = header.split()
        if len(parts) != 2 or parts[0].lower() != "bearer":
            raise exceptions.AuthenticationFailed("Use 'Authorization: Bearer <key>'.")
        try:
            key = ApiKey.objects.get(hashed_key=hash_key(parts[1]), revoked=False)
        except ApiKey.DoesNotExist:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.") from None
        now = timezone.now()
        if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
            ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        return ApiKeyUser(key), key

    def authenticate_header(self, request) -> str:
        return self.keyword


class HasApiKeyScope(permissions.BasePermission):
    """Every endpoint needs a key; a view may name the scope it needs with ``required_scope``.

    Default: ``read`` for safe methods and ``write`` otherwise.
    """

    message = "This API key lacks the scope this endpoint needs."

    def has_permission(self, request, view) -> bool:
        key = getattr(request, "auth", None)
        if not isinstance(key, ApiKey):
            return False
        scope = required_scope(request, view)
        if scope not in key.scopes:
            self.message = f"This API key lacks the '{scope}' scope."
            return False
        return True


def required_scope(request, view) -> str:
    scope = getattr(view, "required_scope", None)
    if scope:
        return scope
    return "read" if request.method in permissions.SAFE_METHODS else "write"
