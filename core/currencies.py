"""Minor units of currencies (pure: standard library only, importable from the pure pricing modules)."""

from __future__ import annotations

#: Minor-unit exponent (number of decimal places) per ISO 4217 code, as in babel's currency precision.
CURRENCY_EXPONENTS: dict[str, int] = {
    "USD": 2,
    "EUR": 2,
    "GBP": 2,
    "JPY": 0,
    "KWD": 3,
    "CHF": 2,
    "CAD": 2,
    "AUD": 2,
    "INR": 2,
}

#: Exponent used for a currency missing from :data:`CURRENCY_EXPONENTS`.
DEFAULT_CURRENCY_EXPONENT = 2


def currency_exponent(currency: str) -> int:
    """Number of minor-unit decimal places of ``currency`` (case-insensitive); unknown codes give 2."""
    return CURRENCY_EXPONENTS.get(currency.upper(), DEFAULT_CURRENCY_EXPONENT)
