"""API keys: scopes, throttles and the audit trail of API writes."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from core.auth import api_key_create
from core.models import ApiAuditEntry

pytestmark = pytest.mark.django_db


def _client(*scopes: str) -> APIClient:
    _, raw = api_key_create(name="scoped", scopes=list(scopes))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def test_a_key_without_the_scope_gets_403():
    ingest_only = _client("ingest")
    response = ingest_only.get("/api/v1/customers")
    assert response.status_code == 403
    assert "read" in response.json()["detail"]
    read_only = _client("read")
    assert read_only.get("/api/v1/customers").status_code == 200
    response = read_only.post("/api/v1/customers", {"external_id": "c1", "name": "C", "currency": "USD"}, format="json")
    assert response.status_code == 403 and "write" in response.json()["detail"]
    # an ingest key may send events (201), and nothing else
    event = {"event_id": "e1", "customer": "c1", "event_name": "call"}
    assert ingest_only.post("/api/v1/events", event, format="json").status_code == 201
    assert read_only.post("/api/v1/events", event, format="json").status_code == 403


def test_unknown_scope_is_refused_at_creation():
    with pytest.raises(ValueError, match="unknown scope"):
        api_key_create(name="bad", scopes=["admin"])


def test_throttle_answers_429_with_retry_after(settings):
    cache.clear()
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"ingest": "100/min", "read": "3/min", "write": "3/min"},
    }
    client = _client("read", "write", "ingest")
    # three reads pass in the minute; the fourth is throttled for this key only
    assert [client.get("/api/v1/customers").status_code for _ in range(3)] == [200, 200, 200]
    throttled = client.get("/api/v1/customers")
    assert throttled.status_code == 429
    assert int(throttled["Retry-After"]) > 0
    # another key has its own bucket
    assert _client("read").get("/api/v1/customers").status_code == 200
    cache.clear()


def test_api_writes_are_audited_with_key_path_and_object(api):
    response = api.post("/api/v1/customers", {"external_id": "acme", "name": "Acme", "currency": "USD"}, format="json")
    assert response.status_code == 201
    entry = ApiAuditEntry.objects.get()
    assert (entry.method, entry.path, entry.status_code) == ("POST", "/api/v1/customers", 201)
    assert entry.object_ref == "external_id=acme" and entry.api_key.name == "tests"
    # reads are not audited; refused writes are (with their status)
    api.get("/api/v1/customers")
    api.post("/api/v1/customers", {"external_id": "acme", "name": "Acme", "currency": "USD"}, format="json")
    assert list(ApiAuditEntry.objects.order_by("id").values_list("status_code", flat=True)) == [201, 400]


def test_audit_log_is_read_only_in_the_admin(admin_client, api):
    api.post("/api/v1/customers", {"external_id": "acme", "name": "Acme", "currency": "USD"}, format="json")
    entry = ApiAuditEntry.objects.get()
    assert admin_client.get("/admin/core/apiauditentry/").status_code == 200
    page = admin_client.get(f"/admin/core/apiauditentry/{entry.pk}/change/")
    assert page.status_code == 200 and b'name="_save"' not in page.content
    assert admin_client.post(f"/admin/core/apiauditentry/{entry.pk}/delete/", {"post": "yes"}).status_code == 403
