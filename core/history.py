"""Shared settings for the change history (django-simple-history) of catalog, customers and meters."""

from __future__ import annotations


def history_user(request=None, **kwargs):
    """The admin user behind a change; ``None`` for API-key requests and scheduled jobs.

    An API request's user is its key (DRF puts an ``ApiKeyUser`` on the request), which a history row
    cannot reference; the API audit trail (``ApiAuditEntry``) records the key instead.
    """
    from django.contrib.auth import get_user_model

    user = getattr(request, "user", None)
    return user if isinstance(user, get_user_model()) else None
