"""Billing-period arithmetic (pure Python, no Django).

Rules (see DESIGN.md, "Customers and subscriptions"):

* Instants are UTC. Every datetime accepted here must be timezone-aware; naive datetimes are
  rejected with ``ValueError``. Aware datetimes in another zone are converted to UTC, and every
  datetime returned is in ``datetime.timezone.utc`` (``datetime.UTC``).
* **Timezones**: every schedule function takes an optional keyword ``timezone`` (an IANA name or a
  ``tzinfo``; ``None`` and ``"UTC"`` are UTC, so callers that pass none keep UTC periods). Calendar
  boundaries are at the zone's local midnight, anniversary boundaries keep the anchor's local wall
  time, and days are counted on local dates, so a period is whole local days even when a day has 23
  or 25 hours (DST). A local time that does not exist (skipped by a DST jump) is read with the offset
  in force before the jump (PEP 495 ``fold=0``), which is the instant the jump happens; a repeated one
  is its first occurrence. Boundaries are returned as UTC instants.
* Periods are half-open intervals ``[start, end)``: an instant equal to ``end`` belongs to the next
  period.
* Intervals are ``"week"`` (7 days; calendar weeks start Monday 00:00), ``"month"`` (1 month),
  ``"quarter"`` (3 months; calendar quarters start Jan 1, Apr 1, Jul 1, Oct 1) and ``"year"`` (12 months).
* Billing modes:

  - ``"anniversary"``: period ``i`` is ``[add_months(anchor, i * n), add_months(anchor, (i + 1) * n))``
    where ``n`` is the interval in months. Every boundary is computed from the *original* anchor,
    never from the previous period's end, so a day clamped in a short month comes back in long
    months (Jan 31 -> Feb 28 -> Mar 31 -> Apr 30). The anchor's local time of day is kept; weekly
    periods are 7 local days.
  - ``"calendar"``: periods are aligned to the 1st of the month 00:00 (the quarter's first day for
    quarterly plans, Jan 1 for yearly ones, Monday for weekly ones), local time. The first period
    runs from the anchor to the next calendar boundary; it is partial (and prorated) unless the
    anchor is exactly on a boundary, in which case it is a full period.

* Proration is by whole days (local dates; UTC dates in UTC): ``days = (end.date() - start.date()).days``
  for both the part and the full period, whatever the time of day (a calendar period starting Jan 15 at
  any time is 17 of January's 31 days). :func:`prorate_period` is the one place that decides it.
* A **timezone change** applies from the next period: the current period keeps its bounds, and
  :func:`period_after` starts the next one where it ends; when that instant is not a boundary of the new
  zone's schedule, this one *transition* period runs to the new zone's first boundary at least one day
  later (UTC -> America/Los_Angeles, monthly calendar: ``[Mar 1 00:00 UTC, Apr 1 07:00 UTC)``; the
  8-hour remainder to ``Mar 1 08:00 UTC`` joins it rather than being billed alone).
"""

import calendar
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from functools import lru_cache
from zoneinfo import ZoneInfo, available_timezones

from catalog.pricing import prorate

__all__ = [
    "ALL_INTERVALS",
    "ANNIVERSARY",
    "BILLING_MODES",
    "CALENDAR",
    "INTERVALS",
    "WEEK",
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
    "period_after",
    "period_containing",
    "periods_between",
    "prorate_period",
    "reset_window",
    "timezone_valid",
    "zone",
]

ANNIVERSARY = "anniversary"
CALENDAR = "calendar"
BILLING_MODES: tuple[str, ...] = (ANNIVERSARY, CALENDAR)

#: Intervals counted in months. ``"week"`` is counted in days (:data:`WEEK`).
INTERVALS: dict[str, int] = {"month": 1, "quarter": 3, "year": 12}
WEEK = "week"
#: Every plan interval, shortest first.
ALL_INTERVALS: tuple[str, ...] = (WEEK, "month", "quarter", "year")

Zone = str | tzinfo | None

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


@lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    # "localtime" and "posixrules" are files of the database, not zones a customer lives in.
    return frozenset(available_timezones() - {"localtime", "posixrules"})


def timezone_valid(name: object) -> bool:
    """True when ``name`` is an IANA zone name of the zoneinfo database (``"Europe/Paris"``, ``"UTC"``)."""
    return isinstance(name, str) and (name == "UTC" or name in _zone_names())


def zone(timezone: Zone = None) -> tzinfo:
    """The ``tzinfo`` of ``timezone``: ``None`` and ``"UTC"`` are UTC; a name must be an IANA zone
    (:func:`timezone_valid`), else ``ValueError``; a ``tzinfo`` is returned as is."""
    if timezone is None or timezone == "UTC":
        return UTC
    if isinstance(timezone, tzinfo):
        return timezone
    if not timezone_valid(timezone):
        raise ValueError(f"unknown timezone {timezone!r}; expected an IANA name such as 'Europe/Paris'")
    return ZoneInfo(timezone)


def _wall(at: datetime, z: tzinfo) -> datetime:
    """The local wall time of the UTC instant ``at`` in ``z``, naive (its ``fold`` kept)."""
    return at.astimezone(z).replace(tzinfo=None)


def _instant(wall: datetime, z: tzinfo) -> datetime:
    """The UTC instant of the naive local wall time ``wall`` in ``z`` (``fold=0`` unless ``wall`` says otherwise:
    a skipped wall time is the instant of the jump; a repeated one its first occurrence)."""
    at = wall.replace(tzinfo=z).astimezone(UTC)
    if wall.fold or _wall(at, z) == wall:
        return at
    # Skipped by a jump: ``fold=0`` read it with the offset before the jump, which lands after the jump by as much
    # as the wall time lies inside the gap. The jump itself is the first instant with the new offset, found
    # between the two readings of the wall time (at most the gap apart) to the microsecond.
    lo, hi = wall.replace(fold=1, tzinfo=z).astimezone(UTC), at
    offset = at.astimezone(z).utcoffset()
    while hi - lo > timedelta(microseconds=1):
        mid = lo + (hi - lo) / 2
        if mid.astimezone(z).utcoffset() == offset:
            hi = mid
        else:
            lo = mid
    return hi


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

    def local_days(self, timezone: Zone = None) -> int:
        """Whole days on the local dates of ``timezone``: :attr:`days` counted on the zone's calendar.

        A month of a zone with DST is its number of days although it is an hour shorter or longer:
        ``[2023-03-01 08:00 UTC, 2023-04-01 07:00 UTC)`` in America/Los_Angeles is 31 days.
        """
        z = zone(timezone)
        return (_wall(self.end, z).date() - _wall(self.start, z).date()).days

    def __contains__(self, at: object) -> bool:
        """``at in period`` is true when ``start <= at < end`` (half-open)."""
        if not isinstance(at, datetime):
            return False
        return self.start <= _utc(at, "at") < self.end


def _add_months_wall(wall: datetime, months: int) -> datetime:
    total = wall.year * 12 + (wall.month - 1) + months
    year, month_index = divmod(total, 12)
    if not 1 <= year <= 9999:
        raise ValueError(f"add_months({wall.isoformat()}, {months}) is out of range")
    month = month_index + 1
    day = min(wall.day, calendar.monthrange(year, month)[1])
    return wall.replace(year=year, month=month, day=day)


def add_months(anchor: datetime, months: int) -> datetime:
    """Return ``anchor`` moved by ``months`` calendar months (may be negative).

    The day of month is clamped to the target month's last day and the time of day is kept:
    Jan 31 +1 -> Feb 28 (Feb 29 in a leap year), +2 -> Mar 31, +3 -> Apr 30. Always call it with the
    *original* anchor and the total offset, never chain results, or the clamped day would stick.
    Raises ``ValueError`` for naive datetimes or a result outside years 1..9999.
    """
    return _add_months_wall(_utc(anchor, "anchor"), months)


def _check_interval(interval: str) -> str:
    if interval not in ALL_INTERVALS:
        raise ValueError(f"unknown interval {interval!r}; expected one of {ALL_INTERVALS}")
    return interval


def interval_months(interval: str) -> int:
    """Length of a plan interval in months: ``"month"`` -> 1, ``"quarter"`` -> 3, ``"year"`` -> 12; else
    ``ValueError`` (``"week"`` is not a whole number of months)."""
    try:
        return INTERVALS[interval]
    except (KeyError, TypeError):
        raise ValueError(f"unknown interval {interval!r}; expected one of {tuple(INTERVALS)}") from None


def _step(wall: datetime, interval: str, count: int) -> datetime:
    """``wall`` moved by ``count`` intervals on the local calendar (weeks: 7 days; else months, clamped)."""
    if interval == WEEK:
        return wall + timedelta(days=7 * count)
    return _add_months_wall(wall, count * interval_months(interval))


def _anniversary_boundary(anchor: datetime, interval: str, index: int, z: tzinfo) -> datetime:
    """Boundary ``index`` of an anniversary schedule: the anchor's local wall time moved by ``index`` intervals."""
    if index == 0:
        return anchor
    return _instant(_step(_wall(anchor, z).replace(fold=0), interval, index), z)


def anniversary_period(anchor: datetime, interval: str, index: int, *, timezone: Zone = None) -> Period:
    """The ``index``-th anniversary period (``index >= 0``; 0 is ``[anchor, anchor + 1 interval)``).

    Both bounds are computed from the original anchor: ``[add_months(anchor, index * n),
    add_months(anchor, (index + 1) * n))`` on the local wall clock of ``timezone`` (weeks: 7 local days).
    """
    if index < 0:
        raise ValueError(f"period index must be >= 0, got {index}")
    _check_interval(interval)
    anchor = _utc(anchor, "anchor")
    z = zone(timezone)
    return Period(
        _anniversary_boundary(anchor, interval, index, z), _anniversary_boundary(anchor, interval, index + 1, z)
    )


def _calendar_floor_date(day: date, interval: str) -> date:
    if interval == WEEK:
        return day - timedelta(days=day.weekday())
    months = interval_months(interval)
    return date(day.year, (day.month - 1) // months * months + 1, 1)


def _calendar_floor(at: datetime, interval: str, timezone: Zone = None) -> datetime:
    """The calendar boundary at or before ``at``: local midnight of its week's Monday, of the 1st of its month,
    quarter or year."""
    z = zone(timezone)
    day = _calendar_floor_date(_wall(_utc(at, "at"), z).date(), _check_interval(interval))
    return _instant(datetime.combine(day, time(0, 0)), z)


def calendar_boundary_after(at: datetime, interval: str, *, timezone: Zone = None) -> datetime:
    """The first calendar boundary strictly after ``at``.

    Monthly: the 1st of the next month 00:00 (local time of ``timezone``; UTC by default:
    ``Feb 1 00:00`` -> ``Mar 1 00:00``). Weekly: the next Monday 00:00. Quarterly: the next Jan 1, Apr 1,
    Jul 1 or Oct 1. Yearly: Jan 1 00:00 of the next year.
    """
    z = zone(timezone)
    day = _calendar_floor_date(_wall(_utc(at, "at"), z).date(), _check_interval(interval))
    following = _step(datetime.combine(day, time(0, 0)), interval, 1)
    return _instant(following, z)


def _is_calendar_boundary(at: datetime, interval: str, timezone: Zone = None) -> bool:
    return _calendar_floor(at, interval, timezone) == at


def first_period(billing: str, anchor: datetime, interval: str, *, timezone: Zone = None) -> Period:
    """The subscription's first period.

    ``"anniversary"``: period 0, ``[anchor, anchor + 1 interval)``.
    ``"calendar"``: ``[anchor, next calendar boundary)``; partial when the anchor is not on a boundary,
    a full period when it is (a start at Feb 1 00:00 monthly gives ``[Feb 1, Mar 1)``).
    """
    _check_billing(billing)
    anchor = _utc(anchor, "anchor")
    if billing == ANNIVERSARY:
        return anniversary_period(anchor, interval, 0, timezone=timezone)
    return Period(anchor, calendar_boundary_after(anchor, interval, timezone=timezone))


def period_containing(billing: str, anchor: datetime, interval: str, at: datetime, *, timezone: Zone = None) -> Period:
    """The period of the schedule that contains ``at`` (``start <= at < end``); requires ``at >= anchor``.

    Constant time: for anniversary billing the local month (or week) offset between anchor and ``at``
    gives the candidate index, corrected by a step when the anchor's day or time of day (or a DST
    shift) puts ``at`` in the neighbouring period. For calendar billing it is the first period if ``at``
    falls in it, otherwise the calendar week, month, quarter or year containing ``at``.
    """
    _check_billing(billing)
    _check_interval(interval)
    anchor = _utc(anchor, "anchor")
    at = _utc(at, "at")
    z = zone(timezone)
    if at < anchor:
        raise ValueError(f"{at.isoformat()} is before the subscription anchor {anchor.isoformat()}")
    if billing == ANNIVERSARY:
        wall_anchor, wall_at = _wall(anchor, z), _wall(at, z)
        if interval == WEEK:
            index = (wall_at.date() - wall_anchor.date()).days // 7
        else:
            month_offset = (wall_at.year - wall_anchor.year) * 12 + (wall_at.month - wall_anchor.month)
            index = month_offset // interval_months(interval)
        # Period `index` starts no later than at's local month (week) give or take the anchor's day and time
        # of day; step back or forward until it holds `at` (at most one step in practice).
        while index > 0 and _anniversary_boundary(anchor, interval, index, z) > at:
            index -= 1
        while _anniversary_boundary(anchor, interval, index + 1, z) <= at:
            index += 1
        return anniversary_period(anchor, interval, index, timezone=z)
    first = first_period(billing, anchor, interval, timezone=z)
    if at < first.end:
        return first
    return Period(_calendar_floor(at, interval, z), calendar_boundary_after(at, interval, timezone=z))


def next_period(billing: str, anchor: datetime, interval: str, period: Period, *, timezone: Zone = None) -> Period:
    """The period of the schedule that starts at ``period.end``.

    Raises ``ValueError`` if ``period.end`` is not a period boundary of this schedule (see
    :func:`period_after` for a schedule whose timezone changed).
    """
    following = period_containing(billing, anchor, interval, period.end, timezone=timezone)
    if following.start != period.end:
        raise ValueError(f"{period.end.isoformat()} is not a period boundary of this {billing} {interval}ly schedule")
    return following


def period_after(billing: str, anchor: datetime, interval: str, end: datetime, *, timezone: Zone = None) -> Period:
    """The period that starts at ``end`` (the end of the period being served) under the schedule of ``timezone``.

    When ``end`` is a boundary of that schedule, it is :func:`next_period`'s period. When it is not (the
    customer's timezone changed during the period that ends at ``end``), it is the **transition period**:
    from ``end`` to the schedule's first boundary at least one day after ``end``, so a remainder shorter
    than a day (the hours between two zones' midnights) joins it instead of being billed on its own.
    """
    end = _utc(end, "end")
    z = zone(timezone)
    following = period_containing(billing, anchor, interval, end, timezone=z)
    if following.start == end:
        return following
    boundary = following.end
    while boundary - end < timedelta(days=1):
        boundary = period_containing(billing, anchor, interval, boundary, timezone=z).end
    return Period(end, boundary)


def periods_between(
    billing: str, anchor: datetime, interval: str, start: datetime, end: datetime, *, timezone: Zone = None
) -> list[Period]:
    """All periods of the schedule that overlap ``[start, end)``, in order.

    A period overlaps when ``period.start < end and start < period.end``. Nothing exists before the
    anchor; an empty range (``start >= end``) gives ``[]``.
    """
    _check_billing(billing)
    _check_interval(interval)
    anchor = _utc(anchor, "anchor")
    start = _utc(start, "start")
    end = _utc(end, "end")
    if start >= end or end <= anchor:
        return []
    period = period_containing(billing, anchor, interval, max(start, anchor), timezone=timezone)
    result: list[Period] = []
    while period.start < end:
        result.append(period)
        period = next_period(billing, anchor, interval, period, timezone=timezone)
    return result


def full_period_for(billing: str, anchor: datetime, interval: str, period: Period, *, timezone: Zone = None) -> Period:
    """The full period a (possibly partial) period is prorated against.

    For a partial first calendar period: the whole calendar week, month, quarter or year containing it
    (``[Jan 15, Feb 1)`` -> ``[Jan 1, Feb 1)``). Otherwise the period itself. Raises ``ValueError`` if
    ``period`` is not a period of this schedule.
    """
    expected = period_containing(billing, anchor, interval, period.start, timezone=timezone)
    if expected != period:
        raise ValueError(f"{period!r} is not a period of this {billing} {interval}ly schedule")
    if billing == CALENDAR and not _is_calendar_boundary(period.start, interval, timezone):
        return Period(_calendar_floor(period.start, interval, timezone), period.end)
    return period


@dataclass(frozen=True, slots=True)
class Proration:
    """What a fixed fee owes for a part period (:func:`prorate_period`).

    ``days`` of ``days_in_period`` whole days; ``amount`` is the fee times ``days / days_in_period``,
    unrounded (the invoice line rounds it once). ``partial`` is false when the part counts as the whole period.
    """

    days: int
    days_in_period: int
    amount: Decimal

    @property
    def partial(self) -> bool:
        return self.days != self.days_in_period


def prorate_period(
    billing: str, anchor: datetime, interval: str, part: Period, amount: Decimal, *, timezone: Zone = None
) -> Proration:
    """How much of a fixed fee ``amount`` the (possibly partial) period ``part`` of a schedule owes.

    Every proration of a fixed fee goes through here. Rules (DESIGN.md "Proration"):

    * The full period is the schedule period containing ``part.start`` (``part.start >= anchor``),
      reaching back to its calendar boundary for a partial first calendar period (:func:`full_period_for`:
      ``[Jan 15, Feb 1)`` is prorated against ``[Jan 1, Feb 1)``). ``part`` is cut at the full period's end.
    * Days are whole days on the local dates of ``timezone`` (UTC dates by default),
      ``(end.date() - start.date()).days``, for the part and for the full period: a month is its number of
      days in a zone with DST although it is an hour shorter or longer.
    * A **transition period** (:func:`period_after`: it starts off the schedule, after a timezone change,
      and runs past the end of the schedule period containing its start) is measured against the
      schedule period containing its last instant; with at least that period's days it owes the whole fee.
    * When the part has as many days as the full period it is not prorated: ``amount`` unchanged, even if
      it is shorter by some hours (a calendar start on Jan 1 at 10:00 pays all of January).
    * **1-day minimum**: a part with fewer whole days than its full period counts at least 1 day, so a part
      starting and ending on the same date (a subscription canceled the day it started) owes 1 day, never 0.
    * The amount is ``catalog.pricing.prorate(amount, days, days_in_period)``: exact to 40 significant
      digits, not rounded; only fixed fees are prorated (usage prices, tier bounds and flat amounts never are).

    Examples: calendar monthly from Jan 15 -> 17 of 31 days; anniversary monthly from Jan 31 10:00,
    ended at once on Feb 10 -> 10 of 28 days (``[Jan 31 10:00, Feb 28 10:00)``); calendar monthly in
    America/Los_Angeles from 2023-02-08 00:00 UTC (Feb 7 local) -> 22 of 28 days.
    """
    z = zone(timezone)
    schedule = period_containing(billing, anchor, interval, part.start, timezone=z)
    if part.start != schedule.start and part.end > schedule.end:
        full = full_period_for(
            billing,
            anchor,
            interval,
            period_containing(billing, anchor, interval, part.end - _TICK, timezone=z),
            timezone=z,
        )
        days = part.local_days(z)
    else:
        full = full_period_for(billing, anchor, interval, schedule, timezone=z)
        days = Period(part.start, min(part.end, full.end)).local_days(z)
    days_in_period = full.local_days(z)
    if full == part or days >= days_in_period:
        return Proration(days=days_in_period, days_in_period=days_in_period, amount=amount)
    days = max(days, 1)
    return Proration(days=days, days_in_period=days_in_period, amount=prorate(amount, days, days_in_period))


_TICK = timedelta(microseconds=1)


def reset_window(
    reset: str, at: datetime, period: Period | None, anchor: datetime | None = None, *, timezone: Zone = None
) -> tuple[datetime | None, datetime | None]:
    """The entitlement reset window ``[start, end)`` containing ``at`` (local midnights of ``timezone``; UTC by
    default).

    * ``"billing_period"``: ``(period.start, period.end)``; ``period`` is required and must contain ``at``.
    * ``"day"``: the day, ``[00:00, next 00:00)``.
    * ``"week"``: the ISO week, Monday 00:00 to the next Monday 00:00.
    * ``"month"``: the calendar month, 1st 00:00 to the next 1st.
    * ``"year"``: the calendar year, Jan 1 00:00 to the next Jan 1.
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
        z = zone(timezone)
        day = _wall(at, z).date()
        return _instant(datetime.combine(day, time(0, 0)), z), _instant(
            datetime.combine(day + timedelta(days=1), time(0, 0)), z
        )
    if reset in ("week", "month", "year"):
        return _calendar_floor(at, reset, timezone), calendar_boundary_after(at, reset, timezone=timezone)
    if reset == "never":
        return (None if anchor is None else _utc(anchor, "anchor")), None
    raise ValueError(f"unknown reset period {reset!r}; expected one of {RESET_KINDS}")
