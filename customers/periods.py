"""Billing-period arithmetic (pure Python, no Django).

Rules (see DESIGN.md, "Customers and subscriptions"):

* Everything is in UTC. Every datetime accepted here must be timezone-aware; naive datetimes are
  rejected with ``ValueError``. Aware datetimes in another zone are converted to UTC, and every
  datetime returned is in ``datetime.timezone.utc`` (``datetime.UTC``).
* Periods are half-open intervals ``[start, end)``: an instant equal to ``end`` belongs to the next
  period.
* Intervals are ``"month"`` (1 month) and ``"year"`` (12 months).
* Billing modes:

  - ``"anniversary"``: period ``i`` is ``[add_months(anchor, i * n), add_months(anchor, (i + 1) * n))``
    where ``n`` is the interval in months. Every boundary is computed from the *original* anchor,
    never from the previous period's end, so a day clamped in a short month comes back in long
    months (Jan 31 -> Feb 28 -> Mar 31 -> Apr 30). The anchor's time of day is kept.
  - ``"calendar"``: periods are aligned to the 1st of the month 00:00 UTC (Jan 1 00:00 UTC for
    yearly plans). The first period runs from the anchor to the next calendar boundary; it is
    partial (and prorated) unless the anchor is exactly on a boundary, in which case it is a full
    period.

* Proration is by whole UTC days: ``days = (end.date() - start.date()).days`` for both the part and
  the full period, whatever the time of day (a calendar period starting Jan 15 at any time is 17 of
  January's 31 days). :func:`prorate_period` is the one place that decides it.
"""

import calendar
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from catalog.pricing import prorate

__all__ = [
    "ANNIVERSARY",
    "BILLING_MODES",
    "CALENDAR",
    "INTERVALS",
    "RESET_KINDS",
    "Period",
    "Proration",
    "add_months",
    "anniversary_period",
    "calendar_boundary_after",
    "first_period",
    "full_period_for",
    "interval_months",
    "next_period",
    "period_containing",
    "periods_between",
    "prorate_period",
    "reset_window",
]

ANNIVERSARY = "anniversary"
CALENDAR = "calendar"
BILLING_MODES: tuple[str, ...] = (ANNIVERSARY, CALENDAR)

INTERVALS: dict[str, int] = {"month": 1, "year": 12}

RESET_KINDS: tuple[str, ...] = ("billing_period", "day", "week", "month", "year", "never")


def _utc(value: datetime, name: str = "datetime") -> datetime:
    """Return ``value`` in UTC; raise ``ValueError`` if it is not a timezone-aware datetime."""
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise ValueError(f"{name} must be timezone-aware (UTC), got naive {value!r}")
    return value.astimezone(UTC)


def _check_billing(billing: str) -> str:
    if billing not in BILLING_MODES:
        raise ValueError(f"unknown billing mode {billing!r}; expected one of {BILLING_MODES}")
    return billing


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0, 0), tzinfo=UTC)


@dataclass(frozen=True, order=True)
class Period:
    """A half-open UTC interval ``[start, end)`` with ``start < end``.

    Both bounds must be timezone-aware (naive -> ``ValueError``); they are stored in UTC.
    Periods order by ``(start, end)``.
    """

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        start = _utc(self.start, "Period.start")
        end = _utc(self.end, "Period.end")
        if not start < end:
            raise ValueError(f"Period start must be before end: [{start.isoformat()}, {end.isoformat()})")
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)

    @property
    def days(self) -> int:
        """Whole UTC days, ``(end.date() - start.date()).days``, whatever the time of day.

        The same rule applies when ``end`` is not at midnight (anniversary periods keep the anchor's
        time of day): ``[Jan 31 10:00, Feb 28 10:00)`` is 28 days, ``[Jan 15 18:00, Feb 1 00:00)`` is 17.
        """
        return (self.end.date() - self.start.date()).days

    def __contains__(self, at: object) -> bool:
        """``at in period`` is true when ``start <= at < end`` (half-open)."""
        if not isinstance(at, datetime):
            return False
        return self.start <= _utc(at, "at") < self.end


def add_months(anchor: datetime, months: int) -> datetime:
    """Return ``anchor`` moved by ``months`` calendar months (may be negative).

    The day of month is clamped to the target month's last day and the time of day is kept:
    Jan 31 +1 -> Feb 28 (Feb 29 in a leap year), +2 -> Mar 31, +3 -> Apr 30. Always call it with the
    *original* anchor and the total offset, never chain results, or the clamped day would stick.
    Raises ``ValueError`` for naive datetimes or a result outside years 1..9999.
    """
    anchor = _utc(anchor, "anchor")
    total = anchor.year * 12 + (anchor.month - 1) + months
    year, month_index = divmod(total, 12)
    if not 1 <= year <= 9999:
        raise ValueError(f"add_months({anchor.isoformat()}, {months}) is out of range")
    month = month_index + 1
    day = min(anchor.day, calendar.monthrange(year, month)[1])
    return anchor.replace(year=year, month=month, day=day)


def interval_months(interval: str) -> int:
    """Length of a plan interval in months: ``"month"`` -> 1, ``"year"`` -> 12; else ``ValueError``."""
    try:
        return INTERVALS[interval]
    except (KeyError, TypeError):
        raise ValueError(f"unknown interval {interval!r}; expected one of {tuple(INTERVALS)}") from None


def anniversary_period(anchor: datetime, interval: str, index: int) -> Period:
    """The ``index``-th anniversary period (``index >= 0``; 0 is ``[anchor, anchor + 1 interval)``).

    Both bounds are computed from the original anchor: ``[add_months(anchor, index * n),
    add_months(anchor, (index + 1) * n))``.
    """
    if index < 0:
        raise ValueError(f"period index must be >= 0, got {index}")
    n = interval_months(interval)
    return Period(add_months(anchor, index * n), add_months(anchor, (index + 1) * n))


def _calendar_floor(at: datetime, interval: str) -> datetime:
    """The calendar boundary at or before ``at``: 1st of its month (or Jan 1 of its year) 00:00 UTC."""
    at = _utc(at, "at")
    month = 1 if interval_months(interval) == 12 else at.month
    return datetime(at.year, month, 1, tzinfo=UTC)


def calendar_boundary_after(at: datetime, interval: str) -> datetime:
    """The first calendar boundary strictly after ``at``.

    Monthly: the 1st of the next month 00:00 UTC (``Feb 1 00:00`` -> ``Mar 1 00:00``).
    Yearly: Jan 1 00:00 UTC of the next year.
    """
    floor = _calendar_floor(at, interval)
    return add_months(floor, interval_months(interval))


def _is_calendar_boundary(at: datetime, interval: str) -> bool:
    return _calendar_floor(at, interval) == at


def first_period(billing: str, anchor: datetime, interval: str) -> Period:
    """The subscription's first period.

    ``"anniversary"``: period 0, ``[anchor, anchor + 1 interval)``.
    ``"calendar"``: ``[anchor, next calendar boundary)``; partial when the anchor is not on a boundary,
    a full period when it is (a start at Feb 1 00:00 monthly gives ``[Feb 1, Mar 1)``).
    """
    _check_billing(billing)
    anchor = _utc(anchor, "anchor")
    if billing == ANNIVERSARY:
        return anniversary_period(anchor, interval, 0)
    return Period(anchor, calendar_boundary_after(anchor, interval))


def period_containing(billing: str, anchor: datetime, interval: str, at: datetime) -> Period:
    """The period of the schedule that contains ``at`` (``start <= at < end``); requires ``at >= anchor``.

    Constant time: for anniversary billing the month offset between anchor and ``at`` gives the
    candidate index, corrected by at most one step back (when ``at`` is earlier in its month than the
    anchor's day/time). For calendar billing it is the first period if ``at`` falls in it, otherwise
    the calendar month (or year) containing ``at``.
    """
    _check_billing(billing)
    anchor = _utc(anchor, "anchor")
    at = _utc(at, "at")
    n = interval_months(interval)
    if at < anchor:
        raise ValueError(f"{at.isoformat()} is before the subscription anchor {anchor.isoformat()}")
    if billing == ANNIVERSARY:
        month_offset = (at.year - anchor.year) * 12 + (at.month - anchor.month)
        index = month_offset // n
        # Period `index` starts in a month no later than at's month; period `index + 1` starts in a
        # later month than at's, so it cannot have started yet. Only one step back may be needed.
        if add_months(anchor, index * n) > at:
            index -= 1
        return anniversary_period(anchor, interval, index)
    first = first_period(billing, anchor, interval)
    if at < first.end:
        return first
    return Period(_calendar_floor(at, interval), calendar_boundary_after(at, interval))


def next_period(billing: str, anchor: datetime, interval: str, period: Period) -> Period:
    """The period of the schedule that starts at ``period.end``.

    Raises ``ValueError`` if ``period.end`` is not a period boundary of this schedule.
    """
    following = period_containing(billing, anchor, interval, period.end)
    if following.start != period.end:
        raise ValueError(f"{period.end.isoformat()} is not a period boundary of this {billing} {interval}ly schedule")
    return following


def periods_between(billing: str, anchor: datetime, interval: str, start: datetime, end: datetime) -> list[Period]:
    """All periods of the schedule that overlap ``[start, end)``, in order.

    A period overlaps when ``period.start < end and start < period.end``. Nothing exists before the
    anchor; an empty range (``start >= end``) gives ``[]``.
    """
    _check_billing(billing)
    anchor = _utc(anchor, "anchor")
    start = _utc(start, "start")
    end = _utc(end, "end")
    interval_months(interval)
    if start >= end or end <= anchor:
        return []
    period = period_containing(billing, anchor, interval, max(start, anchor))
    result: list[Period] = []
    while period.start < end:
        result.append(period)
        period = next_period(billing, anchor, interval, period)
    return result


def full_period_for(billing: str, anchor: datetime, interval: str, period: Period) -> Period:
    """The full period a (possibly partial) period is prorated against.

    For a partial first calendar period: the whole calendar month (or year) containing it
    (``[Jan 15, Feb 1)`` -> ``[Jan 1, Feb 1)``). Otherwise the period itself. Raises ``ValueError`` if
    ``period`` is not a period of this schedule.
    """
    expected = period_containing(billing, anchor, interval, period.start)
    if expected != period:
        raise ValueError(f"{period!r} is not a period of this {billing} {interval}ly schedule")
    if billing == CALENDAR and not _is_calendar_boundary(period.start, interval):
        return Period(_calendar_floor(period.start, interval), period.end)
    return period


@dataclass(frozen=True, slots=True)
class Proration:
    """What a fixed fee owes for a part period (:func:`prorate_period`).

    ``days`` of ``days_in_period`` whole UTC days; ``amount`` is the fee times ``days / days_in_period``,
    unrounded (the invoice line rounds it once). ``partial`` is false when the part counts as the whole period.
    """

    days: int
    days_in_period: int
    amount: Decimal

    @property
    def partial(self) -> bool:
        return self.days != self.days_in_period


def prorate_period(billing: str, anchor: datetime, interval: str, part: Period, amount: Decimal) -> Proration:
    """How much of a fixed fee ``amount`` the (possibly partial) period ``part`` of a schedule owes.

    Every proration of a fixed fee goes through here. Rules (DESIGN.md "Proration"):

    * The full period is the schedule period containing ``part.start`` (``part.start >= anchor``),
      reaching back to its calendar boundary for a partial first calendar period (:func:`full_period_for`:
      ``[Jan 15, Feb 1)`` is prorated against ``[Jan 1, Feb 1)``). ``part`` is cut at the full period's end.
    * Days are whole UTC days, ``(end.date() - start.date()).days``, for the part and for the full period.
    * When the part has as many days as the full period it is not prorated: ``amount`` unchanged, even if
      it is shorter by some hours (a calendar start on Jan 1 at 10:00 pays all of January).
    * **1-day minimum**: a part with fewer whole days than its full period counts at least 1 day, so a part
      starting and ending on the same UTC date (a subscription canceled the day it started) owes 1 day, never 0.
    * The amount is ``catalog.pricing.prorate(amount, days, days_in_period)``: exact to 40 significant
      digits, not rounded; only fixed fees are prorated (usage prices, tier bounds and flat amounts never are).

    Examples: calendar monthly from Jan 15 -> 17 of 31 days; anniversary monthly from Jan 31 10:00,
    ended at once on Feb 10 -> 10 of 28 days (``[Jan 31 10:00, Feb 28 10:00)``).
    """
    schedule = period_containing(billing, anchor, interval, part.start)
    full = full_period_for(billing, anchor, interval, schedule)
    days_in_period = full.days
    days = Period(part.start, min(part.end, full.end)).days
    if full == part or days == days_in_period:
        return Proration(days=days_in_period, days_in_period=days_in_period, amount=amount)
    days = max(days, 1)
    return Proration(days=days, days_in_period=days_in_period, amount=prorate(amount, days, days_in_period))


def reset_window(
    reset: str, at: datetime, period: Period | None, anchor: datetime | None = None
) -> tuple[datetime | None, datetime | None]:
    """The entitlement reset window ``[start, end)`` containing ``at``.

    * ``"billing_period"``: ``(period.start, period.end)``; ``period`` is required and must contain ``at``.
    * ``"day"``: the UTC day, ``[00:00, next 00:00)``.
    * ``"week"``: the ISO week, Monday 00:00 UTC to the next Monday 00:00 UTC.
    * ``"month"``: the calendar month, 1st 00:00 UTC to the next 1st.
    * ``"year"``: the calendar year, Jan 1 00:00 UTC to the next Jan 1.
    * ``"never"``: ``(anchor, None)``: since the subscription started, with no end (``anchor`` may
      be ``None``, meaning unbounded).
    """
    at = _utc(at, "at")
    if reset == "billing_period":
        if period is None:
            raise ValueError("reset 'billing_period' needs the current billing period")
        if at not in period:
            raise ValueError(f"{at.isoformat()} is not within {period!r}")
        return period.start, period.end
    if reset == "day":
        day_start = _midnight(at.date())
        return day_start, day_start + timedelta(days=1)
    if reset == "week":
        week_start = _midnight(at.date() - timedelta(days=at.weekday()))
        return week_start, week_start + timedelta(days=7)
    if reset == "month":
        return _calendar_floor(at, "month"), calendar_boundary_after(at, "month")
    if reset == "year":
        return _calendar_floor(at, "year"), calendar_boundary_after(at, "year")
    if reset == "never":
        return (None if anchor is None else _utc(anchor, "anchor")), None
    raise ValueError(f"unknown reset period {reset!r}; expected one of {RESET_KINDS}")
