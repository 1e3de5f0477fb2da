"""Every aggregation and filter, with hand-computed values, read from raw events and from the hourly rollup."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from metering.models import Meter, UsageRollup
from metering.selectors import meter_usage, usage_for_customers
from metering.services import usage_rollup_refresh
from tests.factories.metering import EventFactory, MeterFactory, MeterFilterFactory

T0 = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
JAN = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC))

pytestmark = pytest.mark.django_db


@pytest.fixture(params=["raw", "rollup"])
def mode(request):
    """Each value is checked twice: straight from events, and after the rollup folded them in."""
    return request.param


def settle(mode: str) -> None:
    if mode == "rollup":
        usage_rollup_refresh(now=datetime(2030, 1, 1, tzinfo=UTC), lag=timedelta(0))


def ev(props: dict, *, at: datetime = T0, customer: str = "c1", name: str = "api_call", **kw):
    return EventFactory(customer_external_id=customer, event_name=name, timestamp=at, properties=props, **kw)


def usage(meter: Meter, customer: str = "c1", window=JAN) -> Decimal:
    return meter_usage(meter=meter, customer_external_id=customer, start=window[0], end=window[1])


def test_count_counts_matching_events_of_the_customer_in_the_window(mode):
    meter = MeterFactory(event_name="api_call", aggregation="count")
    ev({})
    ev({"x": 1}, at=T0 + timedelta(minutes=30))
    ev({}, at=datetime(2026, 1, 31, 23, 59, 59, tzinfo=UTC))
    ev({}, at=datetime(2026, 2, 1, tzinfo=UTC))  # window end is exclusive
    ev({}, at=datetime(2025, 12, 31, 23, 59, tzinfo=UTC))  # before the window
    ev({}, customer="c2")  # another customer
    ev({}, name="other")  # another event name
    settle(mode)
    # 3 events of c1 / api_call inside [Jan 1, Feb 1)
    assert usage(meter) == Decimal(3)


def test_sum_adds_numbers_and_decimal_strings_and_skips_missing(mode):
    meter = MeterFactory(event_name="api_call", aggregation="sum", field="tokens")
    ev({"tokens": 5})
    ev({"tokens": "2.5"}, at=T0 + timedelta(hours=1))
    ev({"tokens": 0.25}, at=T0 + timedelta(hours=2, minutes=5))
    ev({"other": 100})  # missing property contributes nothing
    settle(mode)
    # 5 + 2.5 + 0.25 = 7.75
    assert usage(meter) == Decimal("7.75")


def test_max_takes_the_largest_value(mode):
    meter = MeterFactory(event_name="api_call", aggregation="max", field="seats")
    ev({"seats": 3})
    ev({"seats": "12"}, at=T0 + timedelta(hours=3))
    ev({"seats": 7}, at=T0 + timedelta(days=2))
    settle(mode)
    # max(3, 12, 7) = 12
    assert usage(meter) == Decimal(12)


def test_max_with_no_events_is_zero(mode):
    meter = MeterFactory(event_name="api_call", aggregation="max", field="seats")
    settle(mode)
    assert usage(meter) == Decimal(0)


def test_latest_goes_by_event_timestamp_not_arrival(mode):
    meter = MeterFactory(event_name="api_call", aggregation="latest", field="storage_gb")
    ev({"storage_gb": 40}, at=T0 + timedelta(days=5))  # arrives first, happened last
    ev({"storage_gb": 10}, at=T0)
    ev({"storage_gb": 25}, at=T0 + timedelta(days=1))  # arrives last
    ev({"note": "no value"}, at=T0 + timedelta(days=6))  # no property: not a candidate
    settle(mode)
    # greatest timestamp with the property: T0 + 5 days -> 40
    assert usage(meter) == Decimal(40)


def test_latest_ties_on_timestamp_go_to_the_later_arrival(mode):
    meter = MeterFactory(event_name="api_call", aggregation="latest", field="v")
    ev({"v": 1})
    ev({"v": 2})
    settle(mode)
    assert usage(meter) == Decimal(2)


def test_latest_across_rollup_and_new_events():
    meter = MeterFactory(event_name="api_call", aggregation="latest", field="v")
    ev({"v": 5}, at=T0 + timedelta(days=3))
    usage_rollup_refresh(now=datetime(2030, 1, 1, tzinfo=UTC), lag=timedelta(0))
    ev({"v": 9}, at=T0)  # arrives after the rollup but happened earlier
    assert usage(meter) == Decimal(5)
    ev({"v": 11}, at=T0 + timedelta(days=4))
    assert usage(meter) == Decimal(11)


def test_count_unique_counts_distinct_values(mode):
    meter = MeterFactory(event_name="api_call", aggregation="count_unique", field="user")
    for user in ["ann", "bob", "ann", "cy", "bob"]:
        ev({"user": user})
    ev({"user": 1})
    ev({"user": "1"})  # the number 1 and the string "1" are one value
    ev({})  # missing: nothing
    settle(mode)
    # {ann, bob, cy, 1} = 4
    assert usage(meter) == Decimal(4)


def test_sum_with_multiplier(mode):
    meter = MeterFactory(
        event_name="api_call", aggregation="sum_with_multiplier", field="gb", multiplier=Decimal("2.5")
    )
    ev({"gb": 4})
    ev({"gb": "1.2"}, at=T0 + timedelta(hours=5))
    settle(mode)
    # (4 + 1.2) * 2.5 = 13
    assert usage(meter) == Decimal(13)


def test_filters_all_must_hold(mode):
    meter = MeterFactory(event_name="api_call", aggregation="sum", field="tokens")
    MeterFilterFactory(meter=meter, property="model", values=["gpt-4o", "gpt-4o-mini"])
    MeterFilterFactory(meter=meter, property="region", values=["eu"])
    ev({"tokens": 100, "model": "gpt-4o", "region": "eu"})  # counts
    ev({"tokens": 10, "model": "gpt-4o-mini", "region": "eu"})  # counts
    ev({"tokens": 1000, "model": "gpt-4o", "region": "us"})  # region fails
    ev({"tokens": 5000, "model": "o1", "region": "eu"})  # model fails
    ev({"tokens": 7, "model": "gpt-4o"})  # region missing: fails
    settle(mode)
    # 100 + 10 = 110
    assert usage(meter) == Decimal(110)


def test_one_stream_feeds_several_meters(mode):
    gpt = MeterFactory(event_name="api_call", aggregation="sum", field="tokens")
    MeterFilterFactory(meter=gpt, property="model", values=["gpt-4o"])
    mini = MeterFactory(event_name="api_call", aggregation="sum", field="tokens")
    MeterFilterFactory(meter=mini, property="model", values=["mini"])
    ev({"tokens": 3, "model": "gpt-4o"})
    ev({"tokens": 4, "model": "mini"})
    ev({"tokens": 6, "model": "mini"}, at=T0 + timedelta(hours=1))
    settle(mode)
    assert usage(gpt) == Decimal(3)
    assert usage(mini) == Decimal(10)  # 4 + 6


def test_partial_hours_at_window_edges(mode):
    meter = MeterFactory(event_name="api_call", aggregation="sum", field="n")
    ev({"n": 1}, at=datetime(2026, 1, 10, 9, 10, tzinfo=UTC))
    ev({"n": 2}, at=datetime(2026, 1, 10, 9, 40, tzinfo=UTC))
    ev({"n": 4}, at=datetime(2026, 1, 10, 10, 30, tzinfo=UTC))
    ev({"n": 8}, at=datetime(2026, 1, 10, 11, 15, tzinfo=UTC))
    ev({"n": 16}, at=datetime(2026, 1, 10, 11, 45, tzinfo=UTC))
    settle(mode)
    window = (datetime(2026, 1, 10, 9, 30, tzinfo=UTC), datetime(2026, 1, 10, 11, 30, tzinfo=UTC))
    # 9:40 (2) + 10:30 (4) + 11:15 (8) = 14; 9:10 and 11:45 are outside
    assert usage(meter, window=window) == Decimal(14)
    inside_one_hour = (datetime(2026, 1, 10, 9, 5, tzinfo=UTC), datetime(2026, 1, 10, 9, 20, tzinfo=UTC))
    assert usage(meter, window=inside_one_hour) == Decimal(1)


def test_late_event_after_rollup_is_counted_once():
    meter = MeterFactory(event_name="api_call", aggregation="sum", field="n")
    ev({"n": 5})
    usage_rollup_refresh(now=datetime(2030, 1, 1, tzinfo=UTC), lag=timedelta(0))
    ev({"n": 7}, at=T0 + timedelta(minutes=1))  # same, already rolled-up hour
    assert usage(meter) == Decimal(12)
    usage_rollup_refresh(now=datetime(2030, 1, 2, tzinfo=UTC), lag=timedelta(0))
    usage_rollup_refresh(now=datetime(2030, 1, 3, tzinfo=UTC), lag=timedelta(0))  # idempotent
    assert usage(meter) == Decimal(12)
    row = UsageRollup.objects.get(meter=meter)
    assert (row.event_count, row.value_sum) == (2, Decimal(12))


def test_rollup_reads_only_up_to_a_checkpoint_older_than_the_lag():
    meter = MeterFactory(event_name="api_call", aggregation="count")
    ev({})
    now = datetime(2030, 1, 1, tzinfo=UTC)
    assert usage_rollup_refresh(now=now, lag=timedelta(minutes=5)) == 0  # nothing old enough yet
    watermark = usage_rollup_refresh(now=now + timedelta(minutes=6), lag=timedelta(minutes=5))
    assert watermark > 0
    assert UsageRollup.objects.get(meter=meter).event_count == 1
    assert usage(meter) == Decimal(1)


def test_events_for_a_customer_created_later_count_once_it_exists(mode):
    from tests.factories.customers import CustomerFactory

    meter = MeterFactory(event_name="api_call", aggregation="count")
    ev({}, customer="future-co")
    ev({}, customer="future-co", at=T0 + timedelta(hours=1))
    settle(mode)
    CustomerFactory(external_id="future-co")
    assert usage(meter, customer="future-co") == Decimal(2)


def test_usage_for_many_customers_at_once(mode):
    count = MeterFactory(event_name="api_call", aggregation="count")
    total = MeterFactory(event_name="api_call", aggregation="sum", field="n")
    for customer, values in {"a": [1, 2], "b": [10], "c": []}.items():
        for i, value in enumerate(values):
            ev({"n": value}, customer=customer, at=T0 + timedelta(hours=i))
    settle(mode)
    result = usage_for_customers(meters=[count, total], customer_external_ids=["a", "b", "c"], start=JAN[0], end=JAN[1])
    assert result == {
        ("a", count.id): Decimal(2),
        ("a", total.id): Decimal(3),  # 1 + 2
        ("b", count.id): Decimal(1),
        ("b", total.id): Decimal(10),
    }


def test_values_stored_before_a_numeric_meter_existed_count_only_when_numeric(mode):
    ev({"n": "abc"})
    ev({"n": 3})
    meter = MeterFactory(event_name="api_call", aggregation="sum", field="n")
    settle(mode)
    assert usage(meter) == Decimal(3)


def test_the_aggregation_table_gives_the_choices_the_rules_and_the_rollup():
    """metering/aggregations.py is the one list: Meter's choices, the numeric check, the definition rules and which
    aggregations read the hourly rollup all come from its rows."""
    from core.errors import ValidationFailed
    from metering.aggregations import AGGREGATIONS
    from metering.services import meter_definition_clean

    assert (
        Meter.Aggregation.values
        == list(AGGREGATIONS)
        == ["count", "sum", "max", "latest", "count_unique", "sum_with_multiplier"]
    )
    assert Meter.NUMERIC == ("sum", "max", "latest", "sum_with_multiplier")
    assert [key for key, agg in AGGREGATIONS.items() if not agg.rolls_up] == ["count_unique"]
    assert meter_definition_clean(aggregation="sum_with_multiplier", field="tokens", multiplier="2") == (
        "tokens",
        Decimal("2"),
    )
    for aggregation, field, multiplier, message in [
        ("count", "tokens", None, "A count meter counts events and takes no field."),
        ("count_unique", "", None, "A count_unique meter needs the property it aggregates."),
        ("sum_with_multiplier", "tokens", None, "sum_with_multiplier needs a multiplier."),
        ("max", "tokens", "2", "Only sum_with_multiplier meters take a multiplier."),
    ]:
        with pytest.raises(ValidationFailed) as exc:
            meter_definition_clean(aggregation=aggregation, field=field, multiplier=multiplier)
        assert exc.value.message == message
    # count_unique never rolls up: refreshing leaves no rollup row for it
    meter = MeterFactory(aggregation="count_unique", field="chat_id", event_name="api_call")
    ev({"chat_id": "a"})
    usage_rollup_refresh(now=datetime(2030, 1, 1, tzinfo=UTC), lag=timedelta(0))
    assert not UsageRollup.objects.filter(meter=meter).exists()
    assert usage(meter) == 1
