"""POST /events and POST /events/batch (shared/API.md "Events and usage")."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection

from metering.models import Event
from metering.selectors import numeric_fields_forget
from tests.factories.metering import MeterFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_numeric_fields():
    numeric_fields_forget()
    yield
    numeric_fields_forget()


def post(api, path, body):
    return api.post(f"/api/v1/{path}", data=json.dumps(body), content_type="application/json")


def event(i=1, **kw):
    return {
        "event_id": f"e{i}",
        "customer": "c1",
        "event_name": "api_call",
        "timestamp": "2026-01-15T10:00:00Z",
        "properties": {"tokens": 3},
        **kw,
    }


def test_single_event_accepted_then_duplicate(api):
    first = post(api, "events", event())
    assert (first.status_code, first.json()) == (201, {"status": "accepted"})
    again = post(api, "events", event(properties={"tokens": 999}))
    assert (again.status_code, again.json()) == (200, {"status": "duplicate"})
    stored = Event.objects.get()
    assert (stored.customer_external_id, stored.event_id, stored.properties) == ("c1", "e1", {"tokens": 3})
    assert stored.timestamp == datetime(2026, 1, 15, 10, tzinfo=UTC)


def test_same_event_id_for_another_customer_is_a_new_event(api):
    assert post(api, "events", event()).status_code == 201
    assert post(api, "events", event(customer="c2")).status_code == 201


def test_timestamp_defaults_to_now_and_naive_means_utc(api):
    body = event()
    del body["timestamp"]
    before = datetime.now(UTC)
    assert post(api, "events", body).status_code == 201
    assert Event.objects.get(event_id="e1").timestamp >= before.replace(microsecond=0)
    assert post(api, "events", event(2, timestamp="2026-01-15T10:00:00")).status_code == 201
    assert Event.objects.get(event_id="e2").timestamp == datetime(2026, 1, 15, 10, tzinfo=UTC)
    assert post(api, "events", event(3, timestamp="2026-01-15T12:00:00+02:00")).status_code == 201
    assert Event.objects.get(event_id="e3").timestamp == datetime(2026, 1, 15, 10, tzinfo=UTC)


def test_properties_keep_exact_decimals(api):
    body = json.dumps(event(properties={})).replace(
        '"properties": {}', '"properties": {"cost": 0.1, "big": 12345678901234567890.123456789}'
    )
    assert api.post("/api/v1/events", data=body, content_type="application/json").status_code == 201
    with connection.cursor() as cursor:
        cursor.execute("SELECT properties ->> 'cost', properties ->> 'big' FROM metering_event")
        assert cursor.fetchone() == ("0.1", "12345678901234567890.123456789")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"event_id": None}, "event_id"),
        ({"customer": None}, "customer"),
        ({"event_name": None}, "event_name"),
        ({"customer": ""}, "customer"),
        ({"event_id": ["x"]}, "event_id"),
        ({"timestamp": "yesterday"}, "timestamp"),
        ({"timestamp": 1700000000}, "timestamp"),
        ({"properties": [1, 2]}, "properties"),
        ({"properties": "tokens=3"}, "properties"),
        ({"properties": {"t": "a\u0000b"}}, "properties"),
    ],
)
def test_invalid_event_is_400_naming_the_field(api, change, field):
    body = {k: v for k, v in {**event(), **change}.items() if v is not None}
    response = post(api, "events", body)
    assert response.status_code == 400
    assert field in response.json()
    assert not Event.objects.exists()


def test_invalid_json_is_400_not_500(api):
    response = api.post("/api/v1/events", data=b"{not json", content_type="application/json")
    assert response.status_code == 400
    response = api.post("/api/v1/events/batch", data=b"", content_type="application/json")
    assert response.status_code == 400
    response = post(api, "events", [1, 2])
    assert response.status_code == 400


def test_non_numeric_property_for_a_numeric_meter_is_rejected_naming_event_and_property(api):
    MeterFactory(event_name="api_call", aggregation="sum", field="tokens")
    response = post(api, "events", event(properties={"tokens": "lots"}))
    assert response.status_code == 400
    message = response.json()["properties"][0]
    assert "api_call" in message and "tokens" in message
    for i, ok in enumerate((5, 2.5, "2.5", "+7", ".5", "7.", 0)):
        assert post(api, "events", event(f"ok-{i}", properties={"tokens": ok})).status_code == 201
    # whitespace (even ASCII) and negatives (the meter does not allow them) are refused since the grammar is strict
    for i, bad in enumerate((True, None, {"n": 1}, "1e5", "NaN", " 7 ", -1, "-1")):
        assert post(api, "events", event(f"bad-{i}", properties={"tokens": bad})).status_code == 400
    # a count meter on the same stream, or another event name, puts no rule on the property
    assert post(api, "events", event("other", event_name="login", properties={"tokens": "lots"})).status_code == 201


def test_batch_stores_valid_events_and_reports_rejected_and_duplicates(api):
    MeterFactory(event_name="api_call", aggregation="sum", field="tokens")
    assert post(api, "events", event(1)).status_code == 201
    body = {
        "events": [
            event(1),  # duplicate of a stored event
            event(2),
            {"customer": "c1", "event_name": "api_call"},  # no event_id
            event(3, properties={"tokens": "x"}),  # not numeric
            event(2),  # duplicate inside the batch
            "not an object",
            event(4, timestamp="2026-13-45"),
            event(5, customer="not-yet-a-customer"),
        ]
    }
    response = post(api, "events/batch", body)
    assert response.status_code == 200
    data = response.json()
    assert (data["accepted"], data["duplicates"]) == (2, 2)  # e2 and e5 new; e1 stored before, e2 twice
    assert [(r["index"], r["event_id"], sorted(r["errors"])) for r in data["rejected"]] == [
        (2, None, ["event_id"]),
        (3, "e3", ["properties"]),
        (5, None, ["event"]),
        (6, "e4", ["timestamp"]),
    ]
    assert sorted(Event.objects.values_list("event_id", flat=True)) == ["e1", "e2", "e5"]


def test_batch_of_1001_events_is_400_naming_events(api):
    response = post(api, "events/batch", {"events": [event(i) for i in range(1001)]})
    assert response.status_code == 400
    assert "events" in response.json()
    assert not Event.objects.exists()


def test_batch_of_1000_events_is_accepted(api):
    response = post(api, "events/batch", {"events": [event(i) for i in range(1000)]})
    assert response.json() == {"accepted": 1000, "duplicates": 0, "rejected": []}
    assert Event.objects.count() == 1000


@pytest.mark.parametrize("body", [{}, {"events": "x"}, {"events": None}, []])
def test_batch_without_an_events_list_is_400(api, body):
    response = post(api, "events/batch", body)
    assert response.status_code == 400
    assert "events" in response.json()


def test_ingest_needs_the_ingest_scope(db, anon_api):
    from rest_framework.test import APIClient

    from core.auth import api_key_create

    _, read_only = api_key_create(name="reader", scopes=["read"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {read_only}")
    assert post(client, "events", event()).status_code == 403
    _, ingest_only = api_key_create(name="ingest", scopes=["ingest"])
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {ingest_only}")
    assert post(client, "events/batch", {"events": [event()]}).status_code == 200
    assert post(anon_api, "events", event(2)).status_code == 401


@pytest.mark.parametrize("size", [1, 10, 500])
def test_batch_makes_a_constant_number_of_queries(api, django_assert_max_num_queries, size):
    MeterFactory(event_name="api_call", aggregation="sum", field="tokens")
    post(api, "events", event("warm-up"))  # key's last_used_at and the meter cache are settled
    # API key lookup + the single INSERT ... ON CONFLICT DO NOTHING (the meter fields are cached)
    with django_assert_max_num_queries(2):
        response = post(api, "events/batch", {"events": [event(i) for i in range(size)]})
    assert response.json()["accepted"] == size


@pytest.mark.django_db(transaction=True)
def test_duplicates_sent_concurrently_from_several_threads_count_once(api_key):
    from django.db import connections
    from rest_framework.test import APIClient

    barrier = threading.Barrier(6)
    results: list[int] = []
    lock = threading.Lock()

    def send():
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key}")
        try:
            barrier.wait()
            single = post(client, "events", event("race"))
            batch = post(client, "events/batch", {"events": [event("race"), event("race-2")]})
            with lock:
                results.append(single.status_code)
                results.append(batch.json()["accepted"])
        finally:
            connections.close_all()

    threads = [threading.Thread(target=send) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    singles = results[0::2]
    assert sorted(singles).count(201) + sum(results[1::2]) == 2  # "race" once, "race-2" once
    assert Event.objects.filter(event_id="erace").count() == 1
    assert Event.objects.filter(event_id="erace-2").count() == 1
    from metering.selectors import meter_usage

    meter = MeterFactory(event_name="api_call", aggregation="sum", field="tokens")
    usage = meter_usage(
        meter=meter,
        customer_external_id="c1",
        start=datetime(2026, 1, 1, tzinfo=UTC),
        end=datetime(2026, 2, 1, tzinfo=UTC),
    )
    assert usage == Decimal(6)  # two events of 3 tokens
