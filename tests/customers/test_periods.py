"""Tests for customers.periods (pure Python; no Django needed)."""

import calendar
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from customers.periods import (
    Period,
    add_months,
    anniversary_period,
    calendar_boundary_after,
    first_period,
    full_period_for,
    interval_months,
    next_period,
    period_containing,
    periods_between,
    prorate_period,
    reset_window,
)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def days_of(billing: str, anchor: datetime, interval: str, part: Period) -> tuple[int, int]:
    """``(days, days_in_period)`` of :func:`prorate_period` for ``part``."""
    p = prorate_period(billing, anchor, interval, part, Decimal("1"))
    return p.days, p.days_in_period


# --------------------------------------------------------------------------- exact examples


def test_add_months_clamps_from_original_anchor() -> None:
    anchor = utc(2025, 1, 31, 10, 0)
    assert add_months(anchor, 1) == utc(2025, 2, 28, 10, 0)
    assert add_months(anchor, 2) == utc(2025, 3, 31, 10, 0)
    assert add_months(anchor, 3) == utc(2025, 4, 30, 10, 0)
    assert add_months(utc(2024, 1, 31), 1) == utc(2024, 2, 29)
    assert add_months(anchor, 12) == utc(2026, 1, 31, 10, 0)
    assert add_months(anchor, -2) == utc(2024, 11, 30, 10, 0)
    assert add_months(anchor, 0) == anchor


def test_interval_months() -> None:
    assert interval_months("month") == 1
    assert interval_months("year") == 12
    for bad in ("week", "Month", "", "years"):
        with pytest.raises(ValueError):
            interval_months(bad)


def test_anniversary_monthly_from_jan_31() -> None:
    anchor = utc(2025, 1, 31, 10, 0)
    ends = [anniversary_period(anchor, "month", i).end for i in range(3)]
    assert ends == [utc(2025, 2, 28, 10), utc(2025, 3, 31, 10), utc(2025, 4, 30, 10)]
    # Walking next_period gives the same periods (computed from the anchor, not the previous end).
    p = first_period("anniversary", anchor, "month")
    assert p == Period(anchor, utc(2025, 2, 28, 10))
    p = next_period("anniversary", anchor, "month", p)
    assert p == Period(utc(2025, 2, 28, 10), utc(2025, 3, 31, 10))
    p = next_period("anniversary", anchor, "month", p)
    assert p == Period(utc(2025, 3, 31, 10), utc(2025, 4, 30, 10))
    p = next_period("anniversary", anchor, "month", p)
    assert p == Period(utc(2025, 4, 30, 10), utc(2025, 5, 31, 10))
    assert p.days == 31


def test_anniversary_monthly_leap_year() -> None:
    anchor = utc(2024, 1, 31)
    assert anniversary_period(anchor, "month", 0) == Period(anchor, utc(2024, 2, 29))
    assert anniversary_period(anchor, "month", 1) == Period(utc(2024, 2, 29), utc(2024, 3, 31))


def test_anniversary_yearly_from_feb_29() -> None:
    anchor = utc(2024, 2, 29, 8, 30)
    assert anniversary_period(anchor, "year", 0) == Period(anchor, utc(2025, 2, 28, 8, 30))
    assert anniversary_period(anchor, "year", 3) == Period(utc(2027, 2, 28, 8, 30), utc(2028, 2, 29, 8, 30))
    assert anniversary_period(anchor, "year", 4).start == utc(2028, 2, 29, 8, 30)
    with pytest.raises(ValueError):
        anniversary_period(anchor, "year", -1)


def test_calendar_monthly_partial_first_period() -> None:
    anchor = utc(2026, 1, 15, 13, 45)
    first = first_period("calendar", anchor, "month")
    assert first == Period(anchor, utc(2026, 2, 1))
    full = full_period_for("calendar", anchor, "month", first)
    assert full == Period(utc(2026, 1, 1), utc(2026, 2, 1))
    # Jan 15..Jan 31 inclusive = 17 days of January's 31.
    assert days_of("calendar", anchor, "month", first) == (17, 31)
    second = next_period("calendar", anchor, "month", first)
    assert second == Period(utc(2026, 2, 1), utc(2026, 3, 1))
    assert full_period_for("calendar", anchor, "month", second) == second
    assert days_of("calendar", anchor, "month", second) == (28, 28)


@pytest.mark.parametrize("hour_minute", [(0, 0), (0, 1), (12, 0), (23, 59)])
def test_calendar_proration_ignores_time_of_day(hour_minute: tuple[int, int]) -> None:
    anchor = utc(2026, 1, 15, *hour_minute)
    first = first_period("calendar", anchor, "month")
    assert days_of("calendar", anchor, "month", first) == (17, 31)


def test_calendar_monthly_start_on_boundary_is_full() -> None:
    anchor = utc(2026, 2, 1)
    first = first_period("calendar", anchor, "month")
    assert first == Period(utc(2026, 2, 1), utc(2026, 3, 1))
    full = full_period_for("calendar", anchor, "month", first)
    assert full == first
    assert days_of("calendar", anchor, "month", first) == (28, 28)


def test_calendar_yearly_partial_first_period() -> None:
    anchor = utc(2026, 3, 10, 9, 0)
    first = first_period("calendar", anchor, "year")
    assert first == Period(anchor, utc(2027, 1, 1))
    full = full_period_for("calendar", anchor, "year", first)
    assert full == Period(utc(2026, 1, 1), utc(2027, 1, 1))
    # Mar 10..Dec 31 2026 inclusive: March 31 - 10 + 1 = 22, then Apr 30 + May 31 + Jun 30 + Jul 31
    # + Aug 31 + Sep 30 + Oct 31 + Nov 30 + Dec 31 = 275, total 22 + 275 = 297.
    # 2026 is not a leap year: 365 days. (Cross-check: 365 - (Jan 31 + Feb 28 + Mar 1..9 = 9) = 297.)
    assert days_of("calendar", anchor, "year", first) == (297, 365)
    assert next_period("calendar", anchor, "year", first) == Period(utc(2027, 1, 1), utc(2028, 1, 1))


def test_calendar_boundary_after_is_strict() -> None:
    assert calendar_boundary_after(utc(2026, 2, 1), "month") == utc(2026, 3, 1)
    assert calendar_boundary_after(utc(2026, 1, 31, 23, 59, 59, 999999), "month") == utc(2026, 2, 1)
    assert calendar_boundary_after(utc(2026, 12, 5), "month") == utc(2027, 1, 1)
    assert calendar_boundary_after(utc(2026, 1, 1), "year") == utc(2027, 1, 1)
    assert calendar_boundary_after(utc(2026, 12, 31, 23), "year") == utc(2027, 1, 1)


def test_period_containing_five_years_out() -> None:
    anchor = utc(2025, 1, 31, 10, 0)
    # Feb 2030: the period starting Jan 31 2030 10:00 ends Feb 28 2030 10:00.
    assert period_containing("anniversary", anchor, "month", utc(2030, 2, 28, 9, 59)) == Period(
        utc(2030, 1, 31, 10), utc(2030, 2, 28, 10)
    )
    assert period_containing("anniversary", anchor, "month", utc(2030, 2, 28, 10)) == Period(
        utc(2030, 2, 28, 10), utc(2030, 3, 31, 10)
    )
    assert period_containing("anniversary", anchor, "month", utc(2030, 3, 15)) == Period(
        utc(2030, 2, 28, 10), utc(2030, 3, 31, 10)
    )
    # Index 61 from the anchor.
    assert period_containing("anniversary", anchor, "month", utc(2030, 3, 15)) == anniversary_period(
        anchor, "month", 61
    )
    assert period_containing("anniversary", anchor, "year", utc(2030, 1, 31, 9)) == Period(
        utc(2029, 1, 31, 10), utc(2030, 1, 31, 10)
    )
    cal_anchor = utc(2026, 1, 15)
    assert period_containing("calendar", cal_anchor, "month", utc(2031, 6, 30, 23)) == Period(
        utc(2031, 6, 1), utc(2031, 7, 1)
    )
    assert period_containing("calendar", cal_anchor, "month", utc(2026, 1, 31)) == Period(cal_anchor, utc(2026, 2, 1))
    assert period_containing("calendar", cal_anchor, "year", utc(2031, 6, 30)) == Period(
        utc(2031, 1, 1), utc(2032, 1, 1)
    )
    with pytest.raises(ValueError):
        period_containing("calendar", cal_anchor, "month", utc(2026, 1, 14))


def test_periods_between() -> None:
    anchor = utc(2026, 1, 15)
    got = periods_between("calendar", anchor, "month", utc(2025, 12, 1), utc(2026, 3, 1))
    assert got == [
        Period(anchor, utc(2026, 2, 1)),
        Period(utc(2026, 2, 1), utc(2026, 3, 1)),
    ]
    got = periods_between("calendar", anchor, "month", utc(2026, 2, 1), utc(2026, 3, 1, 0, 0, 1))
    assert got == [Period(utc(2026, 2, 1), utc(2026, 3, 1)), Period(utc(2026, 3, 1), utc(2026, 4, 1))]
    assert periods_between("calendar", anchor, "month", utc(2026, 3, 1), utc(2026, 3, 1)) == []
    assert periods_between("calendar", anchor, "month", utc(2020, 1, 1), anchor) == []
    ann = periods_between("anniversary", utc(2025, 1, 31, 10), "month", utc(2025, 2, 28, 10), utc(2025, 4, 1))
    assert ann == [
        Period(utc(2025, 2, 28, 10), utc(2025, 3, 31, 10)),
        Period(utc(2025, 3, 31, 10), utc(2025, 4, 30, 10)),
    ]


def test_reset_windows() -> None:
    at = utc(2026, 3, 12, 15, 30)  # a Thursday
    period = Period(utc(2026, 2, 28, 10), utc(2026, 3, 31, 10))
    anchor = utc(2025, 1, 31, 10)
    assert reset_window("billing_period", at, period) == (period.start, period.end)
    assert reset_window("day", at, period) == (utc(2026, 3, 12), utc(2026, 3, 13))
    assert reset_window("week", at, period) == (utc(2026, 3, 9), utc(2026, 3, 16))
    assert reset_window("week", utc(2026, 3, 9), None) == (utc(2026, 3, 9), utc(2026, 3, 16))
    assert reset_window("week", utc(2026, 3, 15, 23, 59), None) == (utc(2026, 3, 9), utc(2026, 3, 16))
    # ISO week across a year boundary: Wed Dec 31 2025 is in the week Mon Dec 29 .. Mon Jan 5.
    assert reset_window("week", utc(2025, 12, 31), None) == (utc(2025, 12, 29), utc(2026, 1, 5))
    assert reset_window("month", at, period) == (utc(2026, 3, 1), utc(2026, 4, 1))
    assert reset_window("month", utc(2026, 12, 31, 23), None) == (utc(2026, 12, 1), utc(2027, 1, 1))
    assert reset_window("year", at, period) == (utc(2026, 1, 1), utc(2027, 1, 1))
    assert reset_window("never", at, period, anchor) == (anchor, None)
    assert reset_window("never", at, None) == (None, None)
    with pytest.raises(ValueError):
        reset_window("billing_period", at, None)
    with pytest.raises(ValueError):
        reset_window("billing_period", utc(2026, 3, 31, 10), period)  # end is exclusive
    with pytest.raises(ValueError):
        reset_window("hour", at, period)


def test_naive_datetimes_rejected() -> None:
    naive = datetime(2026, 1, 15)
    aware = utc(2026, 1, 15)
    with pytest.raises(ValueError):
        add_months(naive, 1)
    with pytest.raises(ValueError):
        Period(naive, utc(2026, 2, 1))
    with pytest.raises(ValueError):
        first_period("calendar", naive, "month")
    with pytest.raises(ValueError):
        calendar_boundary_after(naive, "month")
    with pytest.raises(ValueError):
        period_containing("anniversary", aware, "month", naive)
    with pytest.raises(ValueError):
        reset_window("day", naive, None)


def test_invalid_arguments() -> None:
    anchor = utc(2026, 1, 15)
    with pytest.raises(ValueError):
        first_period("weekly", anchor, "month")
    with pytest.raises(ValueError):
        first_period("calendar", anchor, "fortnight")
    with pytest.raises(ValueError):
        Period(anchor, anchor)
    with pytest.raises(ValueError):
        next_period("calendar", anchor, "month", Period(anchor, utc(2026, 1, 20)))
    with pytest.raises(ValueError):
        full_period_for("calendar", anchor, "month", Period(utc(2026, 1, 1), utc(2026, 2, 1)))
    with pytest.raises(ValueError):  # a part starting before the subscription's anchor
        prorate_period("calendar", anchor, "month", Period(utc(2025, 12, 1), utc(2026, 1, 20)), Decimal("1"))


def test_non_utc_aware_inputs_are_normalised() -> None:
    plus_two = timezone(timedelta(hours=2))
    anchor = datetime(2026, 1, 1, 1, 0, tzinfo=plus_two)  # = Dec 31 2025 23:00 UTC
    first = first_period("calendar", anchor, "month")
    assert first == Period(utc(2025, 12, 31, 23), utc(2026, 1, 1))
    assert first.start.tzinfo is UTC
    assert days_of("calendar", anchor, "month", first) == (1, 31)


def test_period_days_and_ordering() -> None:
    assert Period(utc(2025, 1, 31, 10), utc(2025, 2, 28, 10)).days == 28
    assert Period(utc(2026, 1, 15, 18), utc(2026, 2, 1)).days == 17
    a = Period(utc(2026, 1, 1), utc(2026, 2, 1))
    b = Period(utc(2026, 2, 1), utc(2026, 3, 1))
    assert sorted([b, a]) == [a, b]
    assert utc(2026, 1, 1) in a and utc(2026, 2, 1) not in a


# --------------------------------------------------------------------------- properties

MIN_YEAR, MAX_YEAR = 2000, 2100


@st.composite
def month_end_anchors(draw: st.DrawFn) -> datetime:
    """Anchors on days 28-31 (clamped to the month), at any time of day."""
    year = draw(st.integers(MIN_YEAR, MAX_YEAR))
    month = draw(st.integers(1, 12))
    day = min(draw(st.integers(28, 31)), calendar.monthrange(year, month)[1])
    return utc(
        year,
        month,
        day,
        draw(st.integers(0, 23)),
        draw(st.integers(0, 59)),
        draw(st.integers(0, 59)),
        draw(st.sampled_from([0, 1, 500_000, 999_999])),
    )


@st.composite
def boundary_anchors(draw: st.DrawFn) -> datetime:
    """Anchors exactly on a calendar boundary (1st of a month, midnight)."""
    return utc(draw(st.integers(MIN_YEAR, MAX_YEAR)), draw(st.integers(1, 12)), 1)


anchors = st.one_of(
    st.datetimes(
        min_value=datetime(MIN_YEAR, 1, 1),
        max_value=datetime(MAX_YEAR, 12, 31, 23, 59, 59),
        timezones=st.just(UTC),
    ),
    month_end_anchors(),
    boundary_anchors(),
)
billings = st.sampled_from(["anniversary", "calendar"])
intervals = st.sampled_from(["month", "year"])

PROPERTY_SETTINGS = settings(max_examples=200, deadline=None)


def walk(billing: str, anchor: datetime, interval: str, steps: int) -> list[Period]:
    periods = [first_period(billing, anchor, interval)]
    for _ in range(steps - 1):
        periods.append(next_period(billing, anchor, interval, periods[-1]))
    return periods


@PROPERTY_SETTINGS
@given(anchor=anchors, billing=billings, interval=intervals, steps=st.integers(1, 30))
def test_periods_tile_time(anchor: datetime, billing: str, interval: str, steps: int) -> None:
    periods = walk(billing, anchor, interval, steps)
    assert periods[0].start == anchor
    for period in periods:
        assert period.start < period.end
        assert period.start.tzinfo is UTC and period.end.tzinfo is UTC
        assert period.days >= 1
    for prev, nxt in pairwise(periods):
        assert nxt.start == prev.end
    if billing == "calendar":
        for period in periods[1:]:
            assert period.start == datetime(period.start.year, period.start.month, 1, tzinfo=UTC)
            if interval == "year":
                assert period.start.month == 1
    # periods_between over the walked span returns exactly the walked periods.
    assert periods_between(billing, anchor, interval, anchor, periods[-1].end) == periods


@PROPERTY_SETTINGS
@given(anchor=anchors, interval=intervals, index=st.integers(0, 1200))
def test_anniversary_periods_keep_anchor_day_and_time(anchor: datetime, interval: str, index: int) -> None:
    months = index * interval_months(interval)
    if anchor.year + (anchor.month - 1 + months) // 12 > 9998:
        return
    period = anniversary_period(anchor, interval, index)
    for boundary, offset in ((period.start, months), (period.end, months + interval_months(interval))):
        year, month0 = divmod(anchor.year * 12 + anchor.month - 1 + offset, 12)
        assert (boundary.year, boundary.month) == (year, month0 + 1)
        assert boundary.day == min(anchor.day, calendar.monthrange(year, month0 + 1)[1])
        assert boundary.timetz() == anchor.timetz()


@PROPERTY_SETTINGS
@given(anchor=anchors, billing=billings, interval=intervals, steps=st.integers(1, 15))
def test_proration_fraction_in_unit_interval(anchor: datetime, billing: str, interval: str, steps: int) -> None:
    for i, period in enumerate(walk(billing, anchor, interval, steps)):
        full = full_period_for(billing, anchor, interval, period)
        assert full.start <= period.start and full.end == period.end
        part_days, full_days = days_of(billing, anchor, interval, period)
        assert 0 < part_days <= full_days
        assert 0 < part_days / full_days <= 1
        if i > 0 or billing == "anniversary":
            assert full == period and part_days == full_days
        else:
            # Only the calendar first period can be partial, and only when off a boundary.
            assert (full == period) == (anchor == full.start)


@PROPERTY_SETTINGS
@given(
    anchor=anchors,
    billing=billings,
    interval=intervals,
    data=st.data(),
)
def test_period_containing_agrees_with_walk(anchor: datetime, billing: str, interval: str, data: st.DataObject) -> None:
    # Bounded horizon: ~40 monthly periods or ~40 yearly periods.
    horizon_days = 40 * 31 if interval == "month" else 40 * 366
    offset = data.draw(
        st.one_of(
            st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=horizon_days)),
            st.sampled_from([timedelta(0), timedelta(microseconds=1)]),
        ),
        label="offset",
    )
    at = anchor + offset
    found = period_containing(billing, anchor, interval, at)
    assert found.start <= at < found.end
    period = first_period(billing, anchor, interval)
    for _ in range(50):
        if at < period.end:
            break
        period = next_period(billing, anchor, interval, period)
    else:
        pytest.fail("walk did not reach `at` within the bound")
    assert found == period
    # Period boundaries themselves belong to the period that starts there.
    assert period_containing(billing, anchor, interval, found.end).start == found.end


# --------------------------------------------------------------------------- proration of a part period


def test_prorate_period_worked_examples() -> None:
    # Calendar monthly from Jan 15: 17 of January's 31 days; 31.00 x 17 / 31 = 17 exactly.
    jan15 = utc(2026, 1, 15, 13, 45)
    first = first_period("calendar", jan15, "month")
    p = prorate_period("calendar", jan15, "month", first, Decimal("31.00"))
    assert (p.days, p.days_in_period, p.amount, p.partial) == (17, 31, Decimal("17"), True)
    # A full period is not prorated: the amount comes back unchanged.
    feb = Period(utc(2026, 2, 1), utc(2026, 3, 1))
    p = prorate_period("calendar", jan15, "month", feb, Decimal("49.99"))
    assert (p.days, p.days_in_period, p.amount, p.partial) == (28, 28, Decimal("49.99"), False)
    # Canceled at once on Feb 10 (any hour): Feb 1..Feb 9 = 9 of 28 days; 28.00 x 9 / 28 = 9.
    p = prorate_period("calendar", jan15, "month", Period(utc(2026, 2, 1), utc(2026, 2, 10, 18)), Decimal("28.00"))
    assert (p.days, p.days_in_period, p.amount) == (9, 28, Decimal("9"))
    # Anniversary from Jan 31 10:00, ended Feb 10: [Jan 31 10:00, Feb 28 10:00) has 28 days, the part 10.
    jan31 = utc(2026, 1, 31, 10)
    p = prorate_period("anniversary", jan31, "month", Period(jan31, utc(2026, 2, 10, 9)), Decimal("28"))
    assert (p.days, p.days_in_period, p.amount) == (10, 28, Decimal("10"))


def test_prorate_period_counts_at_least_one_day() -> None:
    # Started Mar 3 09:00 and ended the same day at 17:00: 0 whole days, counted as 1 of March's 31.
    # 31.00 x 1 / 31 = 1.
    anchor = utc(2026, 3, 3, 9)
    p = prorate_period("anniversary", anchor, "month", Period(anchor, utc(2026, 3, 3, 17)), Decimal("31.00"))
    assert (p.days, p.days_in_period, p.amount, p.partial) == (1, 31, Decimal("1"), True)


def test_prorate_period_with_as_many_days_as_the_full_period_is_not_prorated() -> None:
    # Calendar start Jan 1 at 10:00: [Jan 1 10:00, Feb 1) has 31 whole days like January: the whole fee.
    anchor = utc(2026, 1, 1, 10)
    first = first_period("calendar", anchor, "month")
    p = prorate_period("calendar", anchor, "month", first, Decimal("10.00"))
    assert (p.days, p.days_in_period, p.amount, p.partial) == (31, 31, Decimal("10.00"), False)
    # Anniversary [Jan 31 10:00, Feb 28 10:00) ended Feb 28 at 09:00: still 28 of 28 days.
    jan31 = utc(2026, 1, 31, 10)
    p = prorate_period("anniversary", jan31, "month", Period(jan31, utc(2026, 2, 28, 9)), Decimal("10.00"))
    assert (p.days, p.amount, p.partial) == (28, Decimal("10.00"), False)


def _old_proration(billing: str, anchor: datetime, interval: str, period: Period, amount: Decimal) -> Decimal:
    """The rule the invoice lines applied before ``prorate_period`` existed (kept here as the oracle)."""
    from catalog.pricing import prorate

    full = full_period_for(billing, anchor, interval, period_containing(billing, anchor, interval, period.start))
    if full == period:
        return amount
    part = Period(period.start, min(period.end, full.end))
    if part.days == full.days:
        return amount
    return prorate(amount, max(part.days, 1), full.days)


@PROPERTY_SETTINGS
@given(
    anchor=anchors,
    billing=billings,
    interval=intervals,
    data=st.data(),
    amount=st.decimals(min_value=0, max_value=10**9, places=2, allow_nan=False, allow_infinity=False),
)
def test_prorate_period_is_bounded_and_keeps_the_earlier_results(
    anchor: datetime, billing: str, interval: str, data: st.DataObject, amount: Decimal
) -> None:
    """Any part ``[period start, t)`` of a schedule period: a (calendar) start, a cancellation at once, or both."""
    period = data.draw(st.sampled_from(walk(billing, anchor, interval, 3)), label="period")
    length = data.draw(st.timedeltas(min_value=timedelta(microseconds=1), max_value=period.end - period.start))
    part = Period(period.start, period.start + length)
    p = prorate_period(billing, anchor, interval, part, amount)
    assert 1 <= p.days <= p.days_in_period
    assert Decimal(0) <= p.amount <= amount
    if not p.partial:
        assert p.amount == amount
    elif amount > 0:
        assert p.amount < amount
    if part == full_period_for(billing, anchor, interval, period):
        assert not p.partial
    assert p.amount == _old_proration(billing, anchor, interval, part, amount)
