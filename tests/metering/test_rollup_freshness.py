"""The rollup reads up to the newest committed event behind the insert fence, and is refreshed right after
ingestion (docs/metering.md, "Rollup freshness")."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.db import connection, connections, transaction

from metering import services
from metering.models import Event, MeterRollupState, UsageRollup
from metering.selectors import meter_usage, numeric_fields_forget
from tests.factories.metering import MeterFactory

NOW = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _fresh_numeric_fields():
    numeric_fields_forget()
    cache.delete("metering:usage_rollup_soon")
    yield
    numeric_fields_forget()


def post(api, path, body):
    return api.post(f"/api/v1/{path}", data=json.dumps(body), content_type="application/json")


def event(event_id, tokens, at="2026-01-15T10:20:00Z"):
    return {
        "event_id": event_id,
        "customer": "c1",
        "event_name": "api_call",
        "timestamp": at,
        "properties": {"tokens": tokens},
    }


def watermark(meter) -> int:
    return MeterRollupState.objects.get(meter=meter).last_event_id


@pytest.mark.django_db
def test_without_lag_the_rollup_holds_every_committed_event_at_once(api):
    meter = MeterFactory(event_name="api_call", aggregation="sum", field="tokens")
    post(api, "events/batch", {"events": [event("a", 2), event("b", 3)]})
    # No checkpoint minutes old is needed: the fence says nothing is in flight.
    assert services.usage_rollup_refresh(now=NOW) == Event.objects.order_by("-id").first().id
    row = UsageRollup.objects.get(meter=meter)
    assert (row.event_count, row.value_sum) == (2, Decimal(5))  # 2 + 3


@pytest.mark.django_db(transaction=True)
def test_an_insert_in_flight_is_waited_for_never_skipped():
    """A transaction has drawn an event id and not committed: the refresh waits for it (it holds the fence),
    then folds it. With a time lag of 0 and no fence it would read past it and never count it."""
    meter = MeterFactory(event_name="api_call", aggregation="count")
    inserted = threading.Event()
    release = threading.Event()

    def writer():
        try:
            with transaction.atomic():
                Event.objects.create(customer_external_id="c1", event_id="slow", event_name="api_call", timestamp=NOW)
                inserted.set()
                release.wait(5)
                time.sleep(0.2)  # the refresh is now waiting on the fence
        finally:
            connections.close_all()

    thread = threading.Thread(target=writer)
    thread.start()
    assert inserted.wait(5)
    release.set()
    upto = services.usage_rollup_refresh(now=NOW)
    thread.join()
    slow = Event.objects.get(event_id="slow")
    assert upto == slow.id
    assert watermark(meter) == slow.id
    assert UsageRollup.objects.get(meter=meter).event_count == 1


@pytest.mark.django_db(transaction=True)
def test_a_busy_fence_falls_back_to_the_checkpoint_without_blocking(monkeypatch):
    monkeypatch.setattr(services, "ROLLUP_FENCE_TIMEOUT", "100ms")
    MeterFactory(event_name="api_call", aggregation="count")
    inserted = threading.Event()
    release = threading.Event()

    def writer():
        try:
            with transaction.atomic():
                Event.objects.create(customer_external_id="c1", event_id="long", event_name="api_call", timestamp=NOW)
                inserted.set()
                release.wait(5)
        finally:
            connections.close_all()

    thread = threading.Thread(target=writer)
    thread.start()
    assert inserted.wait(5)
    try:
        started = time.perf_counter()
        # The first checkpoint is taken now; none is ROLLUP_LAG old yet, so the rollup reads up to id 0.
        assert services.usage_rollup_refresh(now=NOW) == 0
        assert time.perf_counter() - started < 2
    finally:
        release.set()
        thread.join()


@pytest.mark.django_db
def test_a_batch_queues_one_refresh_per_window(api, settings, django_capture_on_commit_callbacks):
    settings.USAGE_ROLLUP_AFTER_INGEST_SECONDS = 60
    meter = MeterFactory(event_name="api_call", aggregation="sum", field="tokens")
    calls = []
    original = services.usage_rollup_refresh

    def counted(**kwargs):
        calls.append(kwargs)
        return original(**kwargs)

    from metering import tasks

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(services, "usage_rollup_refresh", counted)
        # Tasks run in-process in the suite: the refresh runs as soon as the batch is stored.
        with django_capture_on_commit_callbacks(execute=True):
            post(api, "events/batch", {"events": [event("a", 4)]})
        first = Event.objects.get(event_id="a").id
        assert len(calls) == 1
        assert watermark(meter) == first
        with django_capture_on_commit_callbacks(execute=True):
            post(api, "events/batch", {"events": [event("b", 6)]})
            post(api, "events", event("c", 1))
        assert len(calls) == 1  # the same 60-second window: nothing more queued
        assert watermark(meter) == first
    assert tasks.usage_rollup_refresh.name == "metering.usage_rollup_refresh"
    # Exact whatever the watermark: 4 + 6 + 1 = 11 (4 from the rollup, 7 from the raw tail).
    usage = meter_usage(meter=meter, customer_external_id="c1", start=datetime(2026, 1, 1, tzinfo=UTC), end=None)
    assert usage == Decimal(11)


@pytest.mark.django_db
def test_no_refresh_is_queued_when_disabled_or_nothing_new(api, settings, django_capture_on_commit_callbacks):
    meter = MeterFactory(event_name="api_call", aggregation="count")
    settings.USAGE_ROLLUP_AFTER_INGEST_SECONDS = 60
    with django_capture_on_commit_callbacks(execute=True):
        post(api, "events/batch", {"events": [event("a", 1)]})
    assert MeterRollupState.objects.filter(meter=meter).exists()
    MeterRollupState.objects.all().delete()
    cache.delete("metering:usage_rollup_soon")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        post(api, "events/batch", {"events": [event("a", 1)]})  # only a duplicate: nothing new to fold
    assert callbacks == []
    settings.USAGE_ROLLUP_AFTER_INGEST_SECONDS = 0
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        post(api, "events/batch", {"events": [event("b", 1)]})
    assert callbacks == []
    assert not MeterRollupState.objects.exists()
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM metering_event")
        assert cursor.fetchone()[0] == 2
