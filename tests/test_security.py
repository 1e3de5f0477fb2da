"""API keys: scopes, throttles and the audit trail of API writes."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from core.auth import api_key_create, hash_key
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


# ---------------------------------------------------------------- admin requests: NUL and the statement timeout


def _changelist_urls():
    from django.contrib import admin
    from django.urls import reverse

    for model, model_admin in admin.site._registry.items():
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        yield url, model_admin


def test_a_nul_in_any_changelist_search_or_filter_is_a_400(admin_client):
    """Regression: ``?q=%00`` (or a NUL in a list filter) reached PostgreSQL, which refuses NUL in text: a 500."""
    for url, model_admin in _changelist_urls():
        params = [{"q": "a\x00b"}, {"status__exact": "\x00"}, {"x\x00": "1"}]
        for name in model_admin.list_filter:
            field = name if isinstance(name, str) else getattr(name, "parameter_name", None)
            if isinstance(field, str):
                params.append({f"{field}__exact": "\x00"})
        for query in params:
            response = admin_client.get(url, query)
            assert response.status_code == 400, (url, query, response.status_code)
        assert admin_client.get(url, {"q": "ok"}).status_code == 200, url


def test_admin_statements_run_under_a_timeout_that_api_requests_never_see(admin_client, api, settings):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    settings.ADMIN_STATEMENT_TIMEOUT_MS = 12_345
    with CaptureQueriesContext(connection) as ctx:
        assert admin_client.get("/admin/customers/customer/").status_code == 200
    sqls = [q["sql"] for q in ctx.captured_queries]
    assert sqls[0] == "SET statement_timeout = 12345" and sqls[-1] == "RESET statement_timeout"
    with CaptureQueriesContext(connection) as ctx:
        assert api.get("/api/v1/customers").status_code == 200
    assert not [q for q in ctx.captured_queries if "statement_timeout" in q["sql"]]
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone()[0] == "0"


def test_a_slow_admin_statement_is_cancelled_and_answered_503(rf, settings):
    """The guard itself, around a view whose query sleeps past the limit: 503, and the connection is reset."""
    from django.db import connection, transaction

    from core.middleware import AdminGuardMiddleware

    settings.ADMIN_STATEMENT_TIMEOUT_MS = 50

    def slow_view(request):
        seen = {}
        with connection.cursor() as cursor:
            cursor.execute("SHOW statement_timeout")
            seen["timeout"] = cursor.fetchone()[0]
        request.seen = seen
        with transaction.atomic(), connection.cursor() as cursor:  # a savepoint, as the admin's own views use
            cursor.execute("SELECT pg_sleep(2)")
        return None

    guard = AdminGuardMiddleware(lambda request: _respond(guard, request, slow_view))
    request = rf.get("/admin/catalog/planversion/", {"q": "a"})
    response = guard(request)
    assert request.seen == {"timeout": "50ms"}
    assert response.status_code == 503 and b"Narrow the search" in response.content
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone()[0] == "0"
    # outside the admin nothing is set
    api_request = rf.get("/api/v1/customers")
    AdminGuardMiddleware(lambda r: _respond(None, r, slow_view_free))(api_request)
    assert api_request.seen == {"timeout": "0"}


def _respond(guard, request, view):
    """What Django's handler does with a view's exception: offer it to the middleware's process_exception."""
    try:
        return view(request)
    except Exception as exc:
        response = guard.process_exception(request, exc) if guard is not None else None
        if response is None:
            raise
        return response


def slow_view_free(request):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        request.seen = {"timeout": cursor.fetchone()[0]}


# ---------------------------------------------------------------- admin sign-in lockout


def _sign_in(client, password: str, ip: str = "127.0.0.1", username: str = "finance"):
    return client.post("/admin/login/", {"username": username, "password": password, "next": "/admin/"}, REMOTE_ADDR=ip)


def _signed_in(client) -> bool:
    return "_auth_user_id" in client.session


@pytest.fixture
def finance_user(django_user_model):
    return django_user_model.objects.create_user("finance", password="right-password-1", is_staff=True)


def test_five_wrong_passwords_lock_the_username_from_that_address(client, finance_user, settings):
    """Regression: 30 wrong passwords in a row were all checked, with no lockout or backoff."""
    from django.contrib.auth.signals import user_login_failed

    settings.LOGIN_LOCKOUT_ATTEMPTS = 5
    checked = []
    user_login_failed.connect(receiver := lambda **kw: checked.append(1), weak=False)
    try:
        for _ in range(30):
            page = _sign_in(client, "wrong")
            assert page.status_code == 200 and not _signed_in(client)
    finally:
        user_login_failed.disconnect(receiver)
    # the first 5 passwords were checked; the other 25 were refused without looking at the password
    assert len(checked) == 5
    assert "Too many failed sign-ins" in page.content.decode()
    # the right password is refused too while locked
    page = _sign_in(client, "right-password-1")
    assert "Too many failed sign-ins" in page.content.decode() and not _signed_in(client)
    # another address is not locked out, nor another username from this one
    assert _sign_in(client, "right-password-1", ip="10.0.0.2").status_code == 302 and _signed_in(client)


def test_the_lock_ends_and_a_success_clears_the_count(client, finance_user, settings):
    import time

    settings.LOGIN_LOCKOUT_ATTEMPTS = 3
    settings.LOGIN_LOCKOUT_SECONDS = 1
    from core.auth import login_locked

    # 2 failures, a success (clears the count), 2 failures: never 3 in a row, so not locked
    for password in ("wrong", "wrong", "right-password-1", "wrong", "wrong"):
        _sign_in(client, password)
    client.logout()
    assert not login_locked(username="finance", ip="127.0.0.1")
    # a form without a password authenticates nobody and clears nothing: the next failure is the 3rd and locks
    client.post("/admin/login/", {"username": "finance", "password": "", "next": "/admin/"})
    assert "Please enter the correct username and password" in _sign_in(client, "wrong").content.decode()
    assert login_locked(username="finance", ip="127.0.0.1")
    assert "Too many failed sign-ins" in _sign_in(client, "right-password-1").content.decode()
    time.sleep(1.1)  # the lock lasts LOGIN_LOCKOUT_SECONDS
    assert _sign_in(client, "right-password-1").status_code == 302 and _signed_in(client)


def test_the_lockout_reads_the_client_address_behind_the_configured_proxies(rf, settings):
    from core.clients import client_ip

    request = rf.get("/", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.7")
    settings.NUM_PROXIES = 0
    assert client_ip(request) == "10.0.0.1"  # X-Forwarded-For is not trusted without proxies
    settings.NUM_PROXIES = 1
    assert client_ip(request) == "203.0.113.7"  # the address our proxy saw; "6.6.6.6" was sent by the client


def test_a_new_api_key_is_shown_once_on_the_page_not_in_a_message(admin_client):
    """Regression: the admin put a new key in a message, which Django keeps in a cookie (or the session)."""
    import re

    from core.models import ApiKey

    response = admin_client.post("/admin/core/apikey/add/", {"name": "ci", "scopes": ["read"]})
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    raw = re.search(r'<code id="new-api-key">(ll_[^<]+)</code>', response.content.decode()).group(1)
    key = ApiKey.objects.get(hashed_key=hash_key(raw))
    assert key.name == "ci" and key.scopes == ["read"]
    # nowhere else: no cookie, no session entry, no message on the next page
    assert all(raw not in morsel.value for morsel in response.cookies.values())
    assert all(raw not in str(value) for value in admin_client.session.values())
    assert raw not in admin_client.get("/admin/core/apikey/").content.decode()
    # the key works
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.get("/api/v1/customers").status_code == 200


def test_requests_with_no_key_or_a_bad_key_are_throttled_per_address(settings, api_key):
    """Regression: requests with no key or a bad one were never throttled (unbounded key guessing)."""
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "anon": "3/min"},
    }
    anonymous, guessing, other = APIClient(), APIClient(), APIClient(REMOTE_ADDR="10.0.0.9")
    guessing.credentials(HTTP_AUTHORIZATION="Bearer ll_guess_not-a-key")
    # three refusals in the minute from 127.0.0.1 (no key, a bad key, a malformed header); the fourth is throttled
    assert anonymous.get("/api/v1/customers").status_code == 401
    assert guessing.get("/api/v1/customers").status_code == 401
    malformed = APIClient()
    malformed.credentials(HTTP_AUTHORIZATION="Basic Zm9vOmJhcg==")
    assert malformed.get("/api/v1/customers").status_code == 401
    throttled = guessing.post("/api/v1/events", {"event_id": "e1"}, format="json")
    assert throttled.status_code == 429 and int(throttled["Retry-After"]) > 0
    assert anonymous.get("/api/v1/customers").status_code == 429
    # another address has its own bucket; a valid key from the throttled address is not in that bucket at all
    assert other.get("/api/v1/customers").status_code == 401
    keyed = APIClient()
    keyed.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key}")
    assert keyed.get("/api/v1/customers").status_code == 200


def test_the_anonymous_rate_defaults_to_60_a_minute():
    from django.conf import settings

    assert settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["anon"] == "60/min"
