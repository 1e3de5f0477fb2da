"""Monthly partitions of the event table (metering/partitions.py, migration 0004, docs/metering.md "Partitions").

The test database was migrated with partitions for its creation month and the three after it; these tests
use months in 2031-2033, far from those, and create what they need with ``event_partitions_ensure``.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, connections, transaction

from metering.models import Event, EventKey
from metering.partitions import (
    DEFAULT_PARTITION,
    PartitionError,
    event_partition_detach,
    event_partitions_ensure,
    event_partitions_list,
)
from metering.selectors import meter_usage, numeric_fields_forget
from metering.services import usage_rollup_refresh
from tests.factories.metering import MeterFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_numeric_fields():
    numeric_fields_forget()
    yield
    numeric_fields_forget()


def post(api, path, body):
    return api.post(f"/api/v1/{path}", data=json.dumps(body), content_type="application/json")


def event(event_id, at, tokens=1, customer="c1"):
    return {
        "event_id": event_id,
        "customer": customer,
        "event_name": "api_call",
        "timestamp": at,
        "properties": {"tokens": tokens},
    }


def partition_of(event_id: str, customer: str = "c1") -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tableoid::regclass::text FROM metering_event WHERE customer_external_id = %s AND event_id = %s",
            [customer, event_id],
        )
        return cursor.fetchone()[0]


def test_ensure_creates_the_current_month_and_three_ahead_once():
    now = datetime(2031, 11, 20, 8, tzinfo=UTC)
    created = event_partitions_ensure(now=now)
    # November 2031 and the three months after it, across the year end.
    assert created == [
        "metering_event_p2031_11",
        "metering_event_p2031_12",
        "metering_event_p2032_01",
        "metering_event_p2032_02",
    ]
    assert event_partitions_ensure(now=now) == []  # the daily task runs again: nothing to do
    by_name = {p.name: p for p in event_partitions_list()}
    assert by_name["metering_event_p2031_12"].start == datetime(2031, 12, 1, tzinfo=UTC)
    assert by_name["metering_event_p2031_12"].end == datetime(2032, 1, 1, tzinfo=UTC)
    assert event_partitions_list()[-1].name == DEFAULT_PARTITION


def test_events_land_in_their_month_and_the_rest_in_the_default_partition(api):
    event_partitions_ensure(now=datetime(2031, 5, 2, tzinfo=UTC), months_ahead=1)  # May and June 2031
    body = {
        "events": [
            event("may-last", "2031-05-31T23:59:59.999999Z"),
            event("june-first", "2031-06-01T00:00:00Z"),
            event("july", "2031-07-01T00:00:00Z"),  # no July partition yet
        ]
    }
    assert post(api, "events/batch", body).json() == {"accepted": 3, "duplicates": 0, "rejected": []}
    assert partition_of("may-last") == "metering_event_p2031_05"
    assert partition_of("june-first") == "metering_event_p2031_06"
    assert partition_of("july") == DEFAULT_PARTITION


def test_a_late_created_partition_takes_its_rows_from_the_default_partition(api):
    meter = MeterFactory(event_name="api_call", aggregation="sum", field="tokens")
    post(
        api, "events/batch", {"events": [event("a", "2033-03-10T10:00:00Z", 4), event("b", "2033-04-01T00:00:00Z", 5)]}
    )
    assert partition_of("a") == partition_of("b") == DEFAULT_PARTITION

    assert event_partitions_ensure(now=datetime(2033, 3, 1, tzinfo=UTC), months_ahead=0) == ["metering_event_p2033_03"]

    assert partition_of("a") == "metering_event_p2033_03"
    assert partition_of("b") == DEFAULT_PARTITION  # April is not March
    # Nothing lost or doubled: March holds event a only (4 tokens), March and April 4 + 5 = 9.
    march = meter_usage(meter=meter, customer_external_id="c1", start=datetime(2033, 3, 1, tzinfo=UTC), end=None)
    assert march == Decimal(9)
    assert Event.objects.count() == 2


def test_an_event_id_is_unique_per_customer_across_partitions(api):
    event_partitions_ensure(now=datetime(2031, 1, 1, tzinfo=UTC), months_ahead=1)
    assert post(api, "events", event("e1", "2031-01-15T10:00:00Z")).status_code == 201
    # The same (customer, event id) with a timestamp in another month's partition: still the same event.
    again = post(api, "events", event("e1", "2031-02-15T10:00:00Z", tokens=99))
    assert (again.status_code, again.json()) == (200, {"status": "duplicate"})
    batch = post(
        api, "events/batch", {"events": [event("e1", "2031-02-20T00:00:00Z"), event("e2", "2031-02-20T00:00:00Z")]}
    )
    assert batch.json() == {"accepted": 1, "duplicates": 1, "rejected": []}
    # Another customer may use the same event id.
    assert post(api, "events", event("e1", "2031-02-15T10:00:00Z", customer="c2")).status_code == 201
    assert Event.objects.filter(event_id="e1").count() == 2
    assert EventKey.objects.filter(event_id="e1").count() == 2
    assert partition_of("e1") == "metering_event_p2031_01"  # the first one stays where it was


def test_every_write_path_is_held_to_the_key(api):
    """The trigger, not the API, keeps the key: an ORM insert of a duplicate in another month fails."""
    event_partitions_ensure(now=datetime(2031, 1, 1, tzinfo=UTC), months_ahead=1)
    Event.objects.create(
        customer_external_id="c1", event_id="x", event_name="api_call", timestamp=datetime(2031, 1, 5, tzinfo=UTC)
    )
    with pytest.raises(IntegrityError, match="eventkey_unique_customer_event_id"), transaction.atomic():
        Event.objects.create(
            customer_external_id="c1", event_id="x", event_name="api_call", timestamp=datetime(2031, 2, 5, tzinfo=UTC)
        )
    assert post(api, "events", event("x", "2031-02-05T00:00:00Z")).json() == {"status": "duplicate"}


@pytest.mark.django_db(transaction=True)
def test_the_same_event_sent_concurrently_into_two_partitions_is_stored_once(api_key):
    """Six threads send event "race" with timestamps in two months: the key is taken once."""
    from rest_framework.test import APIClient

    event_partitions_ensure(now=datetime(2031, 1, 1, tzinfo=UTC), months_ahead=1)
    barrier = threading.Barrier(6)
    results: list[int] = []
    lock = threading.Lock()

    def send(i):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key}")
        try:
            barrier.wait()
            at = "2031-01-31T23:00:00Z" if i % 2 else "2031-02-01T01:00:00Z"
            body = {"events": [event("race", at), event(f"own-{i}", at)]}
            response = post(client, "events/batch", body)
            with lock:
                results.append(response.json()["accepted"])
        finally:
            connections.close_all()

    threads = [threading.Thread(target=send, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # "race" once plus one "own-i" per thread: 1 + 6 = 7 accepted in all.
    assert sum(results) == 7
    assert Event.objects.filter(event_id="race").count() == 1
    assert Event.objects.count() == 7


def test_detaching_an_old_month_keeps_its_table_and_its_keys(api):
    event_partitions_ensure(now=datetime(2031, 1, 1, tzinfo=UTC), months_ahead=0)
    post(api, "events", event("old", "2031-01-10T00:00:00Z"))
    now = datetime(2031, 4, 15, tzinfo=UTC)

    with pytest.raises(PartitionError, match="current month or the one before"):
        event_partition_detach(month=date(2031, 3, 1), now=now)
    with pytest.raises(PartitionError, match="No partition metering_event_p2030_12"):
        event_partition_detach(month=date(2030, 12, 1), now=now)

    assert event_partition_detach(month=date(2031, 1, 1), now=now) == "metering_event_p2031_01"
    assert not Event.objects.filter(event_id="old").exists()
    with connection.cursor() as cursor:
        cursor.execute("SELECT event_id FROM metering_event_p2031_01")  # the archive to dump, then drop
        assert cursor.fetchall() == [("old",)]
    assert "metering_event_p2031_01" not in {p.name for p in event_partitions_list()}
    # The id stays used: re-sending the archived event is a duplicate, not a second copy.
    assert post(api, "events", event("old", "2031-01-10T00:00:00Z")).json() == {"status": "duplicate"}


def test_the_rollup_stays_exact_for_late_events_in_an_older_partition(api):
    """Events are rolled up by id, not by time: a late event for January, arriving in February after the
    January hours were folded, lands in January's partition and is folded into its hour at the next refresh."""
    event_partitions_ensure(now=datetime(2031, 1, 1, tzinfo=UTC), months_ahead=1)
    meter = MeterFactory(event_name="api_call", aggregation="sum", field="tokens")
    january = datetime(2031, 1, 1, tzinfo=UTC), datetime(2031, 2, 1, tzinfo=UTC)
    post(
        api,
        "events/batch",
        {"events": [event("j1", "2031-01-10T10:15:00Z", 10), event("f1", "2031-02-03T08:00:00Z", 7)]},
    )
    now = datetime(2031, 2, 5, tzinfo=UTC)
    usage_rollup_refresh(now=now, lag=timedelta(0))
    usage_rollup_refresh(now=now + timedelta(seconds=1), lag=timedelta(0))  # reads up to the first checkpoint

    late = post(api, "events", event("j-late", "2031-01-10T10:45:00Z", 5))
    assert late.status_code == 201
    assert partition_of("j-late") == "metering_event_p2031_01"

    def january_usage():
        return meter_usage(meter=meter, customer_external_id="c1", start=january[0], end=january[1])

    # Before the refresh: 10 from the rollup's hour 10:00 plus 5 from the raw tail = 15.
    assert january_usage() == Decimal(15)
    usage_rollup_refresh(now=now + timedelta(minutes=1), lag=timedelta(0))
    usage_rollup_refresh(now=now + timedelta(minutes=2), lag=timedelta(0))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT event_count, value_sum FROM metering_usagerollup WHERE meter_id = %s AND hour = %s",
            [meter.id, datetime(2031, 1, 10, 10, tzinfo=UTC)],
        )
        # Hour 10:00 of January 10th now holds both events: 2 events, 10 + 5 = 15 tokens.
        assert cursor.fetchone() == (2, Decimal(15))
    assert january_usage() == Decimal(15)
    # February is untouched: 7.
    assert meter_usage(meter=meter, customer_external_id="c1", start=january[1], end=None) == Decimal(7)


def test_the_command_lists_ensures_and_refuses_a_bad_month():
    import io

    from django.core.management import CommandError, call_command

    out = io.StringIO()
    call_command("event_partitions", "--ensure", stdout=out)
    text = out.getvalue()
    assert "metering_event_default" in text and "default (outside every month)" in text
    with pytest.raises(CommandError, match="YYYY-MM"):
        call_command("event_partitions", "--detach", "May 2031", stdout=io.StringIO())
    with pytest.raises(CommandError, match="No partition metering_event_p2001_01"):
        call_command("event_partitions", "--detach", "2001-01", stdout=io.StringIO())
