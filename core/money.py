"""Currency list and money helpers shared by every app.

``CURRENCY_CHOICES`` is a pinned constant passed to every currency field so that upstream currency
lists never churn migrations; ``settings.CURRENCIES`` says which of them this installation accepts.
Amounts are ``Decimal`` everywhere; rounding lives in ``catalog.pricing.quantize_minor``.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings

from .currencies import currency_exponent

CURRENCY_CHOICES = (
    ("USD", "US Dollar"),
    ("EUR", "Euro"),
    ("GBP", "British Pound"),
    ("JPY", "Japanese Yen"),
    ("CHF", "Swiss Franc"),
    ("CAD", "Canadian Dollar"),
    ("AUD", "Australian Dollar"),
    ("INR", "Indian Rupee"),
    ("KWD", "Kuwaiti Dinar"),
)

CURRENCY_SYMBOLS = {
    "USD": "$",
    "EUR": "€",
    "GBP": "£",
    "JPY": "¥",
    "CHF": "CHF ",
    "CAD": "CA$",
    "AUD": "A$",
    "INR": "₹",
}


def currency_allowed(code: str) -> bool:
    return code in settings.CURRENCIES


def format_money(amount: Decimal | None, currency: str) -> str:
    """Human form for the admin and PDFs: ``$1,234.50``; exact decimals kept (no float)."""
    if amount is None:
        return "—"
    exp = currency_exponent(currency)
    q = Decimal(1).scaleb(-exp)
    value = amount.quantize(q) if amount == amount.quantize(q) else amount.normalize()
    sign = "-" if value < 0 else ""
    value = abs(value)
    text = f"{value:,}"
    symbol = CURRENCY_SYMBOLS.get(currency)
    return f"{sign}{symbol}{text}" if symbol else f"{sign}{text} {currency}"


def _plain(value: Decimal) -> Decimal:
    """``value`` without trailing zeros or exponent: ``2000.000`` -> ``2000``, ``0.50`` -> ``0.5``, ``-0`` -> ``0``."""
    normalized = value.normalize()
    if normalized == normalized.to_integral_value():
        normalized = normalized.quantize(Decimal(1))
    return abs(normalized) if normalized.is_zero() else normalized


def format_decimal(value: Decimal | None) -> str:
    """A quantity or credit amount without trailing zeros: ``2,000`` or ``0.000002``."""
    if value is None:
        return "—"
    return f"{_plain(value):,f}"


def decimal_text(value: Decimal | None) -> str | None:
    """The API's text of a quantity or credit amount: ``Decimal("2000.000000000000")`` -> ``"2000"``, never
    exponent notation (``"0.000002"``), no thousands separators; ``None`` stays ``None`` (JSON null)."""
    if value is None:
        return None
    return f"{_plain(value):f}"
