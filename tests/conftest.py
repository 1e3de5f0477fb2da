"""Shared fixtures. Tests run on a real PostgreSQL (DATABASE_URL, or the embedded server)."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

pytest_plugins = ["tests.celery_support"]


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Throttle buckets and sign-in lockouts live in the cache: each test starts with none."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def api_key(db):
    from core.auth import api_key_create

    key, raw = api_key_create(name="tests")
    return raw


@pytest.fixture
def api(api_key) -> APIClient:
    """An API client authenticated with an all-scopes key; JSON by default."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key}")
    client.default_format = "json"
    return client


@pytest.fixture
def anon_api() -> APIClient:
    return APIClient()
