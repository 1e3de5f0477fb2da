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

__all__ = ["EARLIEST", "LATEST", "OUT_OF_RANGE", "instant_check", "instant_in_range", "validate_instant"]


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
