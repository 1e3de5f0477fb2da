"""API key authentication (``Authorization: Bearer <key>``) and scope permissions; the admin sign-in lockout.

Keys look like ``ll_<prefix>_<secret>``; the database keeps ``sha256(key)`` and the prefix only.

Admin sign-in lockout (rule chosen; django-axes does the same with a table): after ``LOGIN_LOCKOUT_ATTEMPTS``
failed sign-ins for one username from one client address within ``LOGIN_LOCKOUT_WINDOW_SECONDS``, that
username is refused from that address for ``LOGIN_LOCKOUT_SECONDS`` without its password being checked; a
successful sign-in clears the count. Counters live in the default cache (Redis in production, so every web
process shares them). The client address is ``REMOTE_ADDR``, or with ``NUM_PROXIES`` set the address that many
proxies back in ``X-Forwarded-For`` (as the API throttles read it).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.utils import timezone
from rest_framework import authentication, exceptions, permissions

from .clients import client_ip, required_scope
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
        """The key's user, or None with no header (then the permission check answers 401).

        Every request without a valid key is counted in the anonymous bucket of its address first
        (``core.throttling``): past the rate it gets 429 instead of 401.
        """
        from .throttling import anonymous_request_count  # throttling imports this module

        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            anonymous_request_count(request)
            return None
        parts = header.split()
        if len(parts) != 2 or parts[0].lower() != "bearer":
            anonymous_request_count(request)
            raise exceptions.AuthenticationFailed("Use 'Authorization: Bearer <key>'.")
        try:
            key = ApiKey.objects.get(hashed_key=hash_key(parts[1]), revoked=False)
        except ApiKey.DoesNotExist:
            anonymous_request_count(request)
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


# --- Admin sign-in lockout ------------------------------------------------------------------------------------


def _lockout_key(username: str, ip: str) -> str:
    digest = hashlib.sha256(f"{username.casefold()}\n{ip}".encode()).hexdigest()[:40]
    return f"login-lockout:{digest}"


def login_locked(*, username: str, ip: str) -> bool:
    return cache.get(f"{_lockout_key(username, ip)}:locked") is not None


def login_failure_record(*, username: str, ip: str) -> bool:
    """Count a failed sign-in; True when this failure locks the username for this address."""
    key = _lockout_key(username, ip)
    cache.add(f"{key}:failures", 0, timeout=settings.LOGIN_LOCKOUT_WINDOW_SECONDS)  # the window opens here
    try:
        failures = cache.incr(f"{key}:failures")
    except ValueError:  # the window closed between add and incr
        cache.set(f"{key}:failures", 1, timeout=settings.LOGIN_LOCKOUT_WINDOW_SECONDS)
        failures = 1
    if failures < settings.LOGIN_LOCKOUT_ATTEMPTS:
        return False
    cache.set(f"{key}:locked", True, timeout=settings.LOGIN_LOCKOUT_SECONDS)
    cache.delete(f"{key}:failures")
    return True


def login_success_record(*, username: str, ip: str) -> None:
    cache.delete(f"{_lockout_key(username, ip)}:failures")


class LockoutAuthenticationForm(AdminAuthenticationForm):
    """The admin's sign-in form: a locked username+address is refused before its password is checked."""

    def clean(self):
        username = self.cleaned_data.get("username") or ""
        ip = client_ip(self.request) if self.request is not None else ""
        if login_locked(username=username, ip=ip):
            minutes = max(1, settings.LOGIN_LOCKOUT_SECONDS // 60)
            raise ValidationError(
                f"Too many failed sign-ins for this username from your address. Try again in {minutes} minutes, "
                "or ask an administrator.",
                code="locked",
            )
        try:
            cleaned = super().clean()
        except ValidationError:
            login_failure_record(username=username, ip=ip)
            raise
        if self.get_user() is not None:  # a real sign-in (a form missing its password authenticates nobody)
            login_success_record(username=username, ip=ip)
        return cleaned
