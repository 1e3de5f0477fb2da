"""The platform: API key auth, health, schema, commands, migrations."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from core.auth import hash_key
from core.models import ApiKey

pytestmark = pytest.mark.django_db


def test_api_requires_a_key(anon_api):
    response = anon_api.get("/api/v1/customers")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"


def test_bad_and_revoked_keys_are_401(anon_api, api_key):
    anon_api.credentials(HTTP_AUTHORIZATION="Bearer nope")
    assert anon_api.get("/api/v1/customers").status_code == 401
    ApiKey.objects.update(revoked=True)
    anon_api.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key}")
    assert anon_api.get("/api/v1/customers").status_code == 401


def test_healthz_checks_the_database(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


def test_schema_is_openapi_3_and_docs_need_no_key(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert client.get("/api/docs/").status_code == 200


def test_create_api_key_prints_the_key_alone_on_the_last_line():
    out = io.StringIO()
    call_command("create_api_key", "ci", "--scopes", "ingest,read", stdout=out)
    raw = out.getvalue().strip().splitlines()[-1]
    key = ApiKey.objects.get(hashed_key=hash_key(raw))
    assert key.name == "ci" and key.scopes == ["ingest", "read"]
    # only the hash and a short prefix are stored
    assert raw not in (key.hashed_key, key.prefix) and raw.startswith(f"ll_{key.prefix}_")


def test_no_model_change_without_a_migration():
    out = io.StringIO()
    try:
        call_command("makemigrations", "--check", "--dry-run", stdout=out)
    except SystemExit as exc:  # makemigrations --check exits 1 when a migration is missing
        pytest.fail(f"missing migration:\n{out.getvalue()}\n{exc}")


def test_setup_periodic_tasks_upserts_and_keeps_admin_edits():
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    call_command("setup_periodic_tasks", stdout=io.StringIO())
    task = PeriodicTask.objects.get(name="Billing run (hourly)")
    edited, _ = CrontabSchedule.objects.get_or_create(minute="30", hour="2")
    task.crontab = edited
    task.save()
    call_command("setup_periodic_tasks", stdout=io.StringIO())
    task.refresh_from_db()
    assert task.crontab_id == edited.id
    assert PeriodicTask.objects.filter(name="Billing run (hourly)").count() == 1


def test_unknown_api_urls_are_a_json_404(api, settings):
    settings.DEBUG = False
    response = api.get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found.", "code": "not_found"}


def test_healthz_never_echoes_the_database_error(client, monkeypatch):
    from django.db import OperationalError, connections

    secret = 'connection to "db.internal" failed: password authentication failed for user "billing" (pw hunter2)'

    def broken_cursor(*args, **kwargs):
        raise OperationalError(secret)

    monkeypatch.setattr(connections["default"], "cursor", broken_cursor)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "error", "database": "unavailable"}
    body = response.content.decode()
    assert "hunter2" not in body and "db.internal" not in body and "billing" not in body
