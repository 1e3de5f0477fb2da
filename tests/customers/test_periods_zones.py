"""customers.periods with timezones and the week and quarter intervals (pure Python; no Django needed).

Worked examples from the issue "Customers in their own timezone, weekly and quarterly plans", and property
tests: in several zones (with DST jumps at 02:00, at midnight, of 30 minutes, and half-hour offsets), across
DST, every schedule tiles time without gaps or overlaps and its periods are whole local days.
"""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from customers.periods import (
    ALL_INTERVALS,
    Period,
    anniversary_period,
    calendar_boundary_after,
    first_period,
    next_period,
    period_after,
    period_containing,
    periods_between,
    prorate_period,
    reset_window,
    timezone_valid,
    zone,
)

LA = "America/Los_Angeles"
ZONES = (
    "UTC",
    LA,  # DST at 02:00 local, 8/7 hours behind
    "Asia/Kolkata",  # +05:30, no DST
    "Europe/London",  # DST at 01:00 UTC
    "America/Santiago",  # DST jumps at local midnight: some days start at 01:00
    "Australia/Lord_Howe",  # a 30-minute DST shift
    "Pacific/Chatham",  # +12:45 / +13:45
    "America/St_Johns",  # -03:30 with DST
)
TICK = timedelta(microseconds=1)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def local(name: str, *args: int) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(name)).astimezone(UTC)


# --------------------------------------------------------------------------- the worked examples


def test_los_angeles_calendar_month_starts_and_ends_at_local_midnight() -> None:
    # Created 2023-02-08 00:00 UTC = Feb 7 16:00 in Los Angeles (PST, UTC-8). The period runs to the local
    # Mar 1 00:00 = 2023-03-01 08:00 UTC. Local days Feb 7 -> Mar 1 = 22 of February's 28:
    # 50.00 * 22 / 28 = 39.2857... (39.29 on the line).
    anchor = utc(2023, 2, 8)
    first = first_period("calendar", anchor, "month", timezone=LA)
    assert first == Period(anchor, utc(2023, 3, 1, 8))
    p = prorate_period("calendar", anchor, "month", first, Decimal("50.00"), timezone=LA)
    assert (p.days, p.days_in_period) == (22, 28)
    assert p.amount.quantize(Decimal("0.01")) == Decimal("39.29")
    # In UTC the same start is Feb 8: 21 of 28 days, ending at 00:00 UTC.
    assert first_period("calendar", anchor, "month") == Period(anchor, utc(2023, 3, 1))
    assert prorate_period("calendar", anchor, "month", Period(anchor, utc(2023, 3, 1)), Decimal(50)).days == 21
    # March's period ends at local Apr 1 00:00, now PDT (UTC-7) since Mar 12: 07:00 UTC; still 31 whole days.
    march = next_period("calendar", anchor, "month", first, timezone=LA)
    assert march == Period(utc(2023, 3, 1, 8), utc(2023, 4, 1, 7))
    assert march.local_days(LA) == 31
    assert prorate_period("calendar", anchor, "month", march, Decimal(50), timezone=LA).amount == Decimal(50)


def test_kolkata_march_starts_at_18_30_utc_on_feb_28() -> None:
    assert calendar_boundary_after(utc(2024, 2, 10), "month", timezone="Asia/Kolkata") == utc(2024, 2, 29, 18, 30)


def test_week_calendar_from_a_wednesday() -> None:
    # Wed 2023-02-01 -> Mon 2023-02-06: 5 of 7 days; 7.00 * 5 / 7 = 5.00. Then Monday to Monday.
    anchor = utc(2023, 2, 1)
    first = first_period("calendar", anchor, "week")
    assert first == Period(anchor, utc(2023, 2, 6))
    p = prorate_period("calendar", anchor, "week", first, Decimal("7.00"))
    assert (p.days, p.days_in_period, p.amount) == (5, 7, Decimal("5"))
    assert next_period("calendar", anchor, "week", first) == Period(utc(2023, 2, 6), utc(2023, 2, 13))


def test_week_anniversary_from_a_wednesday_is_every_wednesday() -> None:
    anchor = utc(2023, 2, 1, 9, 30)
    got = periods_between("anniversary", anchor, "week", anchor, utc(2023, 3, 1))
    assert [p.start for p in got] == [utc(2023, 2, d, 9, 30) for d in (1, 8, 15, 22)]
    assert all(p.start.weekday() == 2 for p in got)  # Wednesday
    assert prorate_period("anniversary", anchor, "week", got[0], Decimal("7.00")).amount == Decimal("7.00")


def test_quarter_calendar_from_may_20() -> None:
    # [2024-05-20, 2024-07-01): May 20..31 = 12 days + June 30 = 42 of Q2's 91 days (Apr 30 + May 31 + Jun 30);
    # 91.00 * 42 / 91 = 42.00. From Jul 1 the full quarter, 91.00.
    anchor = utc(2024, 5, 20)
    first = first_period("calendar", anchor, "quarter")
    assert first == Period(anchor, utc(2024, 7, 1))
    p = prorate_period("calendar", anchor, "quarter", first, Decimal("91.00"))
    assert (p.days, p.days_in_period, p.amount) == (42, 91, Decimal("42"))
    q3 = next_period("calendar", anchor, "quarter", first)
    assert q3 == Period(utc(2024, 7, 1), utc(2024, 10, 1))
    assert prorate_period("calendar", anchor, "quarter", q3, Decimal("91.00")).amount == Decimal("91.00")
    assert next_period("calendar", anchor, "quarter", q3) == Period(utc(2024, 10, 1), utc(2025, 1, 1))


def test_quarter_anniversary_keeps_the_clamped_day_from_the_anchor() -> None:
    anchor = utc(2024, 11, 30, 12)
    assert [anniversary_period(anchor, "quarter", i).end for i in range(3)] == [
        utc(2025, 2, 28, 12),
        utc(2025, 5, 30, 12),
        utc(2025, 8, 30, 12),
    ]


def test_anniversary_keeps_the_anchor_local_wall_time_across_dst() -> None:
    # 09:00 in Los Angeles on Jan 15 (17:00 UTC, PST) stays 09:00 local after Mar 12 (16:00 UTC, PDT).
    anchor = local(LA, 2023, 1, 15, 9)
    assert anchor == utc(2023, 1, 15, 17)
    assert anniversary_period(anchor, "month", 2, timezone=LA) == Period(utc(2023, 3, 15, 16), utc(2023, 4, 15, 16))


def test_a_23_hour_and_a_25_hour_day_are_one_day() -> None:
    # The week of the spring jump in London (Sun 2024-03-31 has 23 hours) and of the autumn one (Oct 27, 25 hours).
    spring = period_containing("calendar", utc(2024, 1, 1), "week", utc(2024, 3, 28), timezone="Europe/London")
    assert spring == Period(utc(2024, 3, 25), utc(2024, 3, 31, 23))  # Mon 00:00 GMT -> Mon 00:00 BST
    assert spring.end - spring.start == timedelta(days=7, hours=-1)
    assert spring.local_days("Europe/London") == 7
    autumn = period_containing("calendar", utc(2024, 1, 1), "week", utc(2024, 10, 24), timezone="Europe/London")
    assert autumn.end - autumn.start == timedelta(days=7, hours=1)
    assert autumn.local_days("Europe/London") == 7


def test_a_day_without_midnight_starts_when_the_clock_jumps() -> None:
    # Santiago moved clocks from 00:00 to 01:00 on Sun 2023-09-03: that week starts Mon Aug 28 as usual, and the
    # month of September starts at Sep 1 00:00 -04:00; a daily window for Sep 3 starts at the jump (04:00 UTC).
    z = "America/Santiago"
    assert reset_window("day", utc(2023, 9, 3, 12), None, timezone=z) == (utc(2023, 9, 3, 4), utc(2023, 9, 4, 3))


def test_reset_windows_follow_the_zone() -> None:
    at = utc(2023, 3, 1, 3)  # Feb 28 19:00 in Los Angeles
    assert reset_window("month", at, None, timezone=LA) == (utc(2023, 2, 1, 8), utc(2023, 3, 1, 8))
    assert reset_window("month", at, None) == (utc(2023, 3, 1), utc(2023, 4, 1))


def test_timezone_names() -> None:
    assert timezone_valid("UTC") and timezone_valid(LA) and timezone_valid("Asia/Kolkata")
    for bad in ("Mars/Olympus", "", "localtime", "posixrules", "america/los_angeles", None, 5, "../etc/passwd"):
        assert not timezone_valid(bad)
    with pytest.raises(ValueError):
        zone("Mars/Olympus")
    assert zone(None) is UTC and zone("UTC") is UTC


# --------------------------------------------------------------------------- a timezone change


def test_a_timezone_change_applies_from_the_next_period() -> None:
    anchor = utc(2023, 1, 1)
    # UTC -> Los Angeles: February ended at Mar 1 00:00 UTC; Los Angeles's March starts 8 hours later, too
    # short to bill alone, so the transition period runs to its April boundary, Apr 1 07:00 UTC (PDT).
    transition = period_after("calendar", anchor, "month", utc(2023, 3, 1), timezone=LA)
    assert transition == Period(utc(2023, 3, 1), utc(2023, 4, 1, 7))
    # Local days Feb 28 -> Apr 1 = 32, more than March's 31: the whole fee, not more.
    p = prorate_period("calendar", anchor, "month", transition, Decimal(50), timezone=LA)
    assert (p.days, p.days_in_period, p.amount) == (31, 31, Decimal(50))
    assert next_period("calendar", anchor, "month", transition, timezone=LA) == Period(
        utc(2023, 4, 1, 7), utc(2023, 5, 1, 7)
    )
    # Ended at once on Mar 10 00:00 UTC (Mar 9 local): local Feb 28 -> Mar 9 = 9 of March's 31 days.
    part = Period(utc(2023, 3, 1), utc(2023, 3, 10))
    assert prorate_period("calendar", anchor, "month", part, Decimal(31), timezone=LA).days == 9
    # Los Angeles -> UTC: Mar 1 08:00 UTC is not a UTC boundary; the next one, Apr 1 00:00, is a day or more away.
    assert period_after("calendar", anchor, "month", utc(2023, 3, 1, 8)) == Period(utc(2023, 3, 1, 8), utc(2023, 4, 1))
    # On the schedule: the ordinary next period.
    assert period_after("calendar", anchor, "month", utc(2023, 3, 1)) == Period(utc(2023, 3, 1), utc(2023, 4, 1))


# --------------------------------------------------------------------------- properties

zones = st.sampled_from(ZONES)
billings = st.sampled_from(("calendar", "anniversary"))
intervals = st.sampled_from(ALL_INTERVALS)
instants = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2035, 12, 31), timezones=st.just(UTC))


def _starts_a_local_day(at: datetime, name: str) -> bool:
    z = zone(name)
    return (at - TICK).astimezone(z).date() < at.astimezone(z).date()


@settings(max_examples=300, deadline=None)
@given(billing=billings, interval=intervals, name=zones, anchor=instants, steps=st.integers(1, 14))
# Found by this test: a monthly anchor at 01:00:00.000001 London falls on 31 March 2002 inside the spring jump
# (01:00 -> 02:00); its boundary is the jump itself (01:00 UTC), not 1 microsecond after it.
@example(
    billing="anniversary",
    interval="month",
    name="Europe/London",
    anchor=datetime(2001, 12, 31, 1, 0, 0, 1, tzinfo=UTC),
    steps=4,
)
def test_periods_tile_time_in_every_zone(billing: str, interval: str, name: str, anchor: datetime, steps: int) -> None:
    """Walking the schedule: each period starts where the previous one ended (no gap, no overlap), is
    non-empty, is what period_containing returns for each of its instants, and is whole local days
    (calendar boundaries start a local day; anniversary ones keep the anchor's local wall time)."""
    z = zone(name)
    walk = [first_period(billing, anchor, interval, timezone=name)]
    for _ in range(steps):
        walk.append(next_period(billing, anchor, interval, walk[-1], timezone=name))
    assert walk[0].start == anchor
    for a, b in pairwise(walk):
        assert a.end == b.start
    for p in walk:
        assert p.start < p.end
        for at in (p.start, p.end - TICK, p.start + (p.end - p.start) / 2):
            assert period_containing(billing, anchor, interval, at, timezone=name) == p
    boundaries = [p.end for p in walk]
    if billing == "calendar":
        assert all(_starts_a_local_day(b, name) for b in boundaries)
        for p in walk[1:]:
            days = p.local_days(name)
            expected = {"week": {7}, "month": {28, 29, 30, 31}, "quarter": {90, 91, 92}, "year": {365, 366}}
            assert days in expected[interval]
    else:
        wall = anchor.astimezone(z)
        for b in boundaries:
            local_b = b.astimezone(z)
            if interval == "week":
                assert local_b.weekday() == wall.weekday() or local_b.time() != wall.time()
            # The anchor's wall time is kept unless that wall time does not exist that day (a DST jump),
            # when the boundary is the jump itself.
            assert local_b.time() == wall.time() or (b - TICK).astimezone(z).time() < wall.time()
    assert periods_between(billing, anchor, interval, anchor, walk[-1].end, timezone=name) == walk


@settings(max_examples=200, deadline=None)
@given(billing=billings, interval=intervals, name=zones, anchor=instants, offset=st.integers(0, 10**8))
def test_prorations_are_bounded_by_the_fee(billing: str, interval: str, name: str, anchor: datetime, offset: int):
    """Any part of a period (start of period to any instant) owes between 1 day's worth and the whole fee."""
    at = anchor + timedelta(seconds=offset)
    period = period_containing(billing, anchor, interval, at, timezone=name)
    part = Period(period.start, max(at, period.start + TICK))
    p = prorate_period(billing, anchor, interval, part, Decimal(100), timezone=name)
    assert 1 <= p.days <= p.days_in_period
    assert Decimal(0) < p.amount <= Decimal(100)
    whole = prorate_period(billing, anchor, interval, period, Decimal(100), timezone=name)
    assert whole.amount <= Decimal(100)
    if period.start != anchor or billing == "anniversary":
        assert whole.amount == Decimal(100)


@settings(max_examples=200, deadline=None)
@given(billing=billings, interval=intervals, old=zones, new=zones, anchor=instants, steps=st.integers(0, 6))
def test_a_timezone_change_keeps_the_tiling(billing: str, interval: str, old: str, new: str, anchor, steps) -> None:
    """After a change of zone, the next period starts where the current one ends, lasts at least a day, ends on
    a boundary of the new zone's schedule, and its successors are that schedule's periods."""
    current = first_period(billing, anchor, interval, timezone=old)
    for _ in range(steps):
        current = next_period(billing, anchor, interval, current, timezone=old)
    transition = period_after(billing, anchor, interval, current.end, timezone=new)
    assert transition.start == current.end
    if transition != period_containing(billing, anchor, interval, current.end, timezone=new):
        assert transition.end - transition.start >= timedelta(days=1)
    following = next_period(billing, anchor, interval, transition, timezone=new)
    assert following == period_containing(billing, anchor, interval, transition.end, timezone=new)
    fee = prorate_period(billing, anchor, interval, transition, Decimal(100), timezone=new)
    assert Decimal(0) < fee.amount <= Decimal(100)
