"""The daily rollup: whole UTC days of a window come from it, the hours around them from the hourly rollup and
the partial hours and the raw tail from events (metering/selectors.py, docs/metering.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from metering.models import Event, UsageRollupDay
from metering.selectors import meter_usage, usage_for_customers
from metering.services import meter_rollup_reset, usage_rollup_refresh
from tests.factories.metering import EventFactory, MeterFactory

pytestmark = pytest.mark.django_db


def at(day, hour, minute=0):
    return datetime(2026, 1, day, hour, minute, tzinfo=UTC)


EVENTS = [  # (timestamp, tokens)
    (at(9, 23, 50), 1),  # before the window
    (at(10, 6, 10), 2),  # before the window (it starts at 06:30)
    (at(10, 6, 45), 4),  # partial first hour, inside
    (at(10, 20, 0), 8),  # a whole hour of a partial day (hourly rollup)
    (at(11, 0, 0), 16),  # whole day 11 (daily rollup)
    (at(12, 23, 59), 32),  # whole day 12
    (at(13, 1, 5), 64),  # whole hour of the last, partial day
    (at(13, 2, 10), 128),  # partial last hour, inside (window ends 02:20)
    (at(13, 2, 30), 256),  # after the window
]
START, END = at(10, 6, 30), at(13, 2, 20)
# Inside [Jan 10 06:30, Jan 13 02:20): 4 + 8 + 16 + 32 + 64 + 128 = 252.
EXPECTED = Decimal(252)


@pytest.fixture
def meter():
    meter = MeterFactory(event_name="api_call", aggregation="sum", field="tokens")
    for i, (ts, tokens) in enumerate(EVENTS):
        EventFactory(event_id=f"d{i}", customer_external_id="c1", timestamp=ts, properties={"tokens": tokens})
    return meter


def test_a_window_of_partial_and_whole_days_adds_up_the_same_before_and_after_the_rollup(meter):
    assert meter_usage(meter=meter, customer_external_id="c1", start=START, end=END) == EXPECTED  # raw only
    usage_rollup_refresh(now=datetime(2030, 1, 1, tzinfo=UTC), lag=timedelta(0))
    days = {row.day.day: (row.event_count, row.value_sum) for row in UsageRollupDay.objects.filter(meter=meter)}
    # Day 10: 2 + 4 + 8 = 14 from 3 events; day 13: 64 + 128 + 256 = 448 from 3 events.
    assert days == {
        9: (1, Decimal(1)),
        10: (3, Decimal(14)),
        11: (1, Decimal(16)),
        12: (1, Decimal(32)),
        13: (3, Decimal(448)),
    }
    assert meter_usage(meter=meter, customer_external_id="c1", start=START, end=END) == EXPECTED
    # Whole days only: days 11 and 12 = 16 + 32 = 48.
    assert meter_usage(meter=meter, customer_external_id="c1", start=at(11, 0), end=at(13, 0)) == Decimal(48)


def test_events_after_the_rollup_and_late_events_still_count(meter):
    usage_rollup_refresh(now=datetime(2030, 1, 1, tzinfo=UTC), lag=timedelta(0))
    EventFactory(event_id="late", customer_external_id="c1", timestamp=at(11, 12), properties={"tokens": 1000})
    # The late event sits in the raw tail: 252 + 1000 = 1252.
    assert meter_usage(meter=meter, customer_external_id="c1", start=START, end=END) == Decimal(1252)
    usage_rollup_refresh(now=datetime(2030, 1, 1, 0, 1, tzinfo=UTC), lag=timedelta(0))
    assert UsageRollupDay.objects.get(meter=meter, day=at(11, 0)).value_sum == Decimal(1016)  # 16 + 1000
    assert meter_usage(meter=meter, customer_external_id="c1", start=START, end=END) == Decimal(1252)


def test_many_customers_and_a_reset_meter(meter):
    for i in range(3):
        Event.objects.create(
            customer_external_id=f"other-{i}",
            event_id="o",
            event_name="api_call",
            timestamp=at(11, 5),
            properties={"tokens": i + 1},
        )
    usage_rollup_refresh(now=datetime(2030, 1, 1, tzinfo=UTC), lag=timedelta(0))
    values = usage_for_customers(
        meters=[meter], customer_external_ids=["c1", "other-0", "other-2", "nobody"], start=START, end=END
    )
    assert values == {("c1", meter.id): EXPECTED, ("other-0", meter.id): Decimal(1), ("other-2", meter.id): Decimal(3)}
    meter_rollup_reset(meter=meter)
    assert not UsageRollupDay.objects.filter(meter=meter).exists()
    assert meter_usage(meter=meter, customer_external_id="c1", start=START, end=END) == EXPECTED  # raw again


def test_latest_meters_keep_reading_hours():
    meter = MeterFactory(event_name="api_call", aggregation="latest", field="tokens")
    EventFactory(event_id="a", customer_external_id="c1", timestamp=at(11, 3), properties={"tokens": 7})
    EventFactory(event_id="b", customer_external_id="c1", timestamp=at(12, 3), properties={"tokens": 5})
    usage_rollup_refresh(now=datetime(2030, 1, 1, tzinfo=UTC), lag=timedelta(0))
    # The latest event in the window is b (Jan 12 03:00): 5.
    assert meter_usage(meter=meter, customer_external_id="c1", start=at(10, 0), end=at(14, 0)) == Decimal(5)
