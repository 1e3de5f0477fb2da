"""The range of instants accepted as input: every date that feeds billing-period arithmetic is checked here.

Rule (docs/billing-rules.md, "Dates accepted"): a subscription's ``start_at``, a plan version's
``effective_from``, a wallet grant's ``effective_at``/``expires_at``, a usage window's ``from``/``to`` and a
billing run's ``--now`` lie between **2000-01-01T00:00:00Z and 2100-01-01T00:00:00Z**, both included.
Anything else is refused as bad input (400 naming the field; ``run_billing`` exits with an error) before any
period is computed.

Why these bounds: the latest accepted instant leaves nearly eight thousand years between every period end, due
date (``net_payment_terms`` <= 365 days), grace deadline (``invoice_grace_days`` <= 365 days) or age-based
expiry and the end of Python's and PostgreSQL's calendars (year 9999), so no period computation can overflow
(``start_at: 9999-12-31`` used to be a 500). Bounding a run's ``now`` bounds its work too: a subscription
has at most 1,200 monthly boundaries between the two ends. The earliest instant predates any price a company
would migrate into this system, and refuses typing slips like ``0001-01-01``, which would otherwise bill
thousands of periods.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.core.exceptions import ValidationError as DjangoValidationError

from .errors import ValidationFailed

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)

OUT_OF_RANGE = "Must be between 2000-01-01T00:00:00Z and 2100-01-01T00:00:00Z."

__all__ = [
    "DAY_FORMAT",
    "EARLIEST",
    "INSTANT_FORMAT",
    "LATEST",
    "OUT_OF_RANGE",
    "format_day",
    "format_day_in",
    "format_instant_in",
    "zone_note",
    "format_instant",
    "instant_check",
    "instant_in_range",
    "validate_instant",
]

# How every page and document shows an instant and a day: "1 Mar 2026, 14:05" and "1 Mar 2026", always in UTC
# (Django date-format syntax). The admin's own date columns use them too (billing_project/formats/en), and
# each page says once that its times are UTC (the admin header, the PDF's dates block).
INSTANT_FORMAT = "j M Y, H:i"
DAY_FORMAT = "j M Y"


def format_instant(value: datetime | None, empty: str = "—") -> str:
    """``1 Mar 2026, 14:05`` (UTC); ``empty`` for ``None``. The one helper for instants shown to people."""
    from django.utils.dateformat import format as date_format

    if value is None:
        return empty
    return date_format(_utc(value), INSTANT_FORMAT)


def format_instant_in(value: datetime | None, timezone: str | None, empty: str = "—") -> str:
    """``1 Mar 2026, 00:00`` on the wall clock of ``timezone`` (an IANA name; UTC when ``None`` or unknown); the
    page names the zone once (:func:`zone_note`)."""
    from django.utils.dateformat import format as date_format

    if value is None:
        return empty
    return date_format(_utc(value).astimezone(_zone(timezone)), INSTANT_FORMAT)


def format_day_in(value: datetime | None, timezone: str | None, empty: str = "—") -> str:
    """``1 Mar 2026``: the local day of ``value`` in ``timezone`` (UTC when ``None`` or unknown)."""
    from django.utils.dateformat import format as date_format

    if value is None:
        return empty
    return date_format(_utc(value).astimezone(_zone(timezone)), DAY_FORMAT)


def zone_note(timezone: str | None) -> str:
    """The zone a page's dates are in, as the page names it: the IANA name (``"America/Los_Angeles"``), or
    ``"UTC"``."""
    return timezone if timezone and _zone(timezone) is not UTC else "UTC"


def _zone(timezone: str | None):
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if not timezone or timezone == "UTC":
        return UTC
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def format_day(value: datetime | None, empty: str = "—") -> str:
    """``1 Mar 2026`` (the UTC day of ``value``); ``empty`` for ``None``."""
    from django.utils.dateformat import format as date_format

    if value is None:
        return empty
    return date_format(_utc(value), DAY_FORMAT)


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def instant_in_range(value: datetime) -> bool:
    """Whether ``value`` lies in ``[EARLIEST, LATEST]``; a naive value is read as UTC."""
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        value = value.replace(tzinfo=UTC)
    return EARLIEST <= value <= LATEST


def instant_check(value: datetime, *, field: str) -> datetime:
    """Return ``value``, or raise :class:`ValidationFailed` (400) naming ``field`` when it is out of range."""
    if not instant_in_range(value):
        raise ValidationFailed(OUT_OF_RANGE, field=field)
    return value


def validate_instant(value: datetime | None) -> None:
    """Field validator (DRF serializer fields and Django form fields both accept it); ``None`` passes."""
    if value is not None and not instant_in_range(value):
        raise DjangoValidationError(OUT_OF_RANGE, code="out_of_range")
