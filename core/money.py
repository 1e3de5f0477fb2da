"""Currency list and money helpers shared by every app.

``CURRENCY_CHOICES`` is a pinned constant passed to every currency field so that upstream currency
lists never churn migrations; ``settings.CURRENCIES`` says which of them this installation accepts.
Amounts are ``Decimal`` everywhere; rounding lives in ``catalog.pricing.quantize_minor``.

The one display rule for a number a person reads (admin pages, lists, messages, ``__str__``, the PDF;
docs/billing-rules.md "Numbers on screen"):

* money: its currency and at least the currency's minor unit, more places only when the value has them:
  ``$121.80``, ``$0.0003``, ``1.500 KWD`` (:func:`format_money`);
* credits and quantities: no trailing zeros, thousands separators: ``2,000``, ``5.5``, ``0.000002``
  (:func:`format_decimal`);
* rates and tax rates: a percentage without trailing zeros: ``20%``, ``7.5%`` (:func:`format_percent`);
* never exponent notation (``0E-12``, ``2E+1``), never a column's stored zeros (``2000.000000000000``).

Editable admin fields show what they hold in the API's plain text (:func:`decimal_text`: ``99``, ``0.05``).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

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
    q = Decimal(1).scaleb(-currency_exponent(currency))
    exact = amount.quantize(q, rounding=ROUND_HALF_UP)
    value = exact if amount == exact else _plain(amount)  # 12-place unit prices keep their places: $0.0003
    sign = "-" if value < 0 else ""
    text = f"{abs(value):,f}"
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


def format_percent(value: Decimal | None) -> str:
    """A rate in percent as people write it: ``Decimal("20.0000")`` -> ``20%``, ``7.50`` -> ``7.5%``."""
    if value is None:
        return "—"
    return f"{_plain(value):,f}%"


def decimal_text(value: Decimal | None) -> str | None:
    """The API's text of a quantity or credit amount: ``Decimal("2000.000000000000")`` -> ``"2000"``, never
    exponent notation (``"0.000002"``), no thousands separators; ``None`` stays ``None`` (JSON null)."""
    if value is None:
        return None
    return f"{_plain(value):f}"
