"""Numbers from outside: one strict grammar for decimal text, shared by every check and the SQL cast.

Pure (stdlib only). Every number that enters through the API, an event or the catalog goes through here, so
"what is a number" has one answer (docs/input-rules.md):

* **Decimal text** is ASCII only: an optional ``+`` (``-`` where negatives are allowed), ASCII digits
  ``0-9``, an optional point (``"12"``, ``"12.50"``, ``".5"``, ``"5."``). No other digits
  (Arabic-Indic, fullwidth), no whitespace of any kind, no ``_`` separators, no exponent, no
  ``NaN``/``Infinity``. Python's ``Decimal()`` and ``int()`` accept all of those, so they are only ever
  called on text that matched the grammar.
* Digits are counted as written: a field stored as ``numeric(28, 12)`` takes at most 16 digits before the
  point and 12 after (``"1.5000000000000"`` has 13 places and is refused, like ``"1e-30"`` or
  ``"0.0000000000001"``, which the column would round to 0). A value is stored exactly or refused, never
  rounded. Sizes are checked before any arithmetic, so ``1e999999999`` is a message, never a
  ``decimal.Overflow``.
* **API fields** (money, credits, rates, quantities) take decimal text or a JSON integer (``"up_to": 5000``).
  A JSON number with a fraction or an exponent arrives as a ``float`` and is refused: decimals with a
  fraction travel as strings (API.md "Conventions"), because a float has already lost digits.
  ``Decimal`` values come only from Python callers (admin forms, services) and are checked by value.
* **Whole numbers** take a JSON integer only (not ``"5"``, not ``5.0``).
* **Event properties** aggregated by a meter: a JSON number or decimal text, at most 20 digits before the
  point and 12 after, signed only where the meter allows negatives (:func:`property_number`). The same
  regular expression (:func:`decimal_pattern`) is read identically by Python's ``re`` and PostgreSQL's
  ``~`` (``\\A``, ``\\Z``, ``[0-9]``, ``(?:)``, ``{m,n}`` mean the same in both), so the ingestion check
  and the SQL cast in usage reads agree by construction. The OpenAPI schema gets the same expression with
  ECMA anchors (``^``, ``$``).
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Literal

__all__ = [
    "PROPERTY_DECIMAL_PLACES",
    "PROPERTY_INTEGER_DIGITS",
    "STORABLE_DIGITS",
    "NumberInvalid",
    "decimal_parse",
    "decimal_pattern",
    "integer_parse",
    "json_number_fits",
    "property_number",
    "property_pattern",
    "zero_pattern_ecma",
]

#: Event properties a meter aggregates: at most 20 digits before the point and 12 after (API.md).
PROPERTY_INTEGER_DIGITS = 20
PROPERTY_DECIMAL_PLACES = 12

_MAX_TEXT = 200  # longer "numbers" are refused before any regex or Decimal work
# Unbounded ASCII decimal text: only used to explain why a value was refused.
_ANY_DECIMAL = re.compile(r"\A([-+]?)([0-9]*)(?:\.([0-9]*))?\Z")
_ZERO_ECMA = r"^[+]?(?:0+(?:\.0*)?|\.0+)$"

Dialect = Literal["python", "postgres", "ecma"]


class NumberInvalid(ValueError):
    """A number from outside that is not one, or does not fit; ``message`` is shown to the client."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def decimal_pattern(
    *, integer_digits: int, decimal_places: int, signed: bool, at_most: int | None = None, dialect: Dialect = "python"
) -> str:
    """A regular expression for bounded ASCII decimal text.

    ``signed=False`` allows only ``+``. ``at_most`` (a power of ten, e.g. 100 for a percentage) bounds the
    value too. ``python`` and ``postgres`` anchor with ``\\A``/``\\Z`` (Python's ``$`` would also match
    before a final newline); ``ecma`` (OpenAPI ``pattern``) with ``^``/``$``.
    """
    sign = "[-+]?" if signed else "[+]?"
    i, p = integer_digits, decimal_places
    places = rf"(?:\.[0-9]{{0,{p}}})?" if p else r"\.?"
    fraction = rf"|\.[0-9]{{1,{p}}}" if p else ""
    if at_most is None:
        body = rf"[0-9]{{1,{i}}}{places}{fraction}"
    else:
        zeros = len(str(at_most)) - 1
        if at_most != 10**zeros or zeros < 1:
            raise ValueError("at_most must be a power of ten")
        top = rf"1{'0' * zeros}" + (rf"(?:\.0{{0,{p}}})?" if p else r"\.?")
        body = rf"{top}|[0-9]{{1,{zeros}}}{places}{fraction}"
    start, end = ("^", "$") if dialect == "ecma" else (r"\A", r"\Z")
    return rf"{start}{sign}(?:{body}){end}"


def zero_pattern_ecma() -> str:
    """Decimal text whose value is zero (``"0"``, ``"0.00"``, ``".0"``), for a schema's ``not``."""
    return _ZERO_ECMA


def property_pattern(*, signed: bool, dialect: Dialect = "python") -> str:
    """The grammar of a numeric event property (negative values only when ``signed``)."""
    return decimal_pattern(
        integer_digits=PROPERTY_INTEGER_DIGITS, decimal_places=PROPERTY_DECIMAL_PLACES, signed=signed, dialect=dialect
    )


_PROPERTY = {signed: re.compile(property_pattern(signed=signed)) for signed in (True, False)}


def _shape(value: Decimal) -> tuple[int, int]:
    """``(digits before the point, decimal places)`` of a finite value, trailing zeros ignored.

    Works on the digit tuple: no context arithmetic, so no Overflow whatever the exponent.
    """
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    if not any(digits):
        return 0, 0
    count = len(digits)
    while exponent < 0 and digits[count - 1] == 0:
        count -= 1
        exponent += 1
    return max(count + exponent, 0), max(-exponent, 0)


# --- Event properties -------------------------------------------------------------------------------------


def _number_text(value: Decimal) -> str | None:
    """The plain text PostgreSQL gives a JSON number (its ``numeric`` output), or None when it is too large
    to be a property: ``1E+2`` -> ``"100"``, ``-0.0`` -> ``"0.0"`` (numeric has no negative zero)."""
    if not value.is_finite():
        return None
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    if exponent < -PROPERTY_DECIMAL_PLACES or len(digits) + exponent > PROPERTY_INTEGER_DIGITS:
        return None
    if value.is_zero():
        value = value.copy_abs()
    return f"{value:f}"


def property_number(value: object, *, signed: bool) -> Decimal | None:
    """The value of an event property a meter aggregates, or None when it is not a number there.

    Accepted: a JSON number (``int`` or the ``Decimal`` the ingestion decoder reads floats as; not a
    boolean) or a string, whose text (for a number, the text PostgreSQL stores it as) matches
    :func:`property_pattern`. This is exactly what the SQL cast in ``metering.selectors.numeric_sql``
    accepts, and it gives the same value.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        text: str | None = str(value) if abs(value) < 10**PROPERTY_INTEGER_DIGITS else None
    elif isinstance(value, Decimal):
        text = _number_text(value)
    elif isinstance(value, str):
        text = value if len(value) <= _MAX_TEXT else None
    else:
        return None
    if text is None or not _PROPERTY[signed].match(text):
        return None
    return Decimal(text)


#: Any JSON number stored in event properties: at most this many digits before the point and after it. Every
#: double fits (1.8e308, 5e-324), so no client's float is refused; ``1e999999999`` (valid JSON, which PostgreSQL
#: cannot store in ``jsonb``) is.
STORABLE_DIGITS = 1000


def json_number_fits(value: int | Decimal) -> bool:
    """Whether a JSON number anywhere in event properties can be stored (``STORABLE_DIGITS`` each side).

    The stricter property grammar (:func:`property_number`) applies to the properties meters aggregate.
    """
    if isinstance(value, int):
        return abs(value) < 10**STORABLE_DIGITS
    if not value.is_finite():
        return False
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    return len(digits) + exponent <= STORABLE_DIGITS and -exponent <= STORABLE_DIGITS


# --- API fields -------------------------------------------------------------------------------------------

_PATTERNS: dict[tuple, re.Pattern[str]] = {}


def _api_pattern(integer_digits: int, decimal_places: int, at_most: int | None) -> re.Pattern[str]:
    key = (integer_digits, decimal_places, at_most)
    if key not in _PATTERNS:
        _PATTERNS[key] = re.compile(
            decimal_pattern(integer_digits=integer_digits, decimal_places=decimal_places, signed=False, at_most=at_most)
        )
    return _PATTERNS[key]


def _text_error(text: str, integer_digits: int, decimal_places: int, at_most: int | None) -> str:
    """Why decimal text did not match its field's grammar (for the client)."""
    match = _ANY_DECIMAL.match(text) if len(text) <= _MAX_TEXT else None
    if match is None or not (match.group(2) or match.group(3)):
        return 'Must be a decimal number in ASCII digits, e.g. "12.50" (no spaces, digit separators or exponent).'
    if match.group(1) == "-":
        return "Must not be negative."
    if len(match.group(2)) > integer_digits:
        return f"At most {integer_digits} digits before the decimal point."
    if len(match.group(3) or "") > decimal_places:
        return f"At most {decimal_places} decimal places."
    return f"Must be at most {at_most}."


def decimal_parse(
    value: object,
    *,
    max_digits: int,
    decimal_places: int,
    positive: bool = False,
    at_most: int | None = None,
) -> Decimal:
    """A non-negative ``Decimal`` from outside that fits a ``numeric(max_digits, decimal_places)`` column.

    ``value``: decimal text or a JSON integer (``int``); a ``Decimal`` from a Python caller is checked by
    value; a ``float`` (a JSON number with a fraction or exponent) is refused. ``positive``: 0 is refused.
    ``at_most``: a power-of-ten upper bound (e.g. 100). Raises :class:`NumberInvalid` with the reason.
    """
    integer_digits = max_digits - decimal_places
    if isinstance(value, bool) or value is None:
        raise NumberInvalid('A decimal number is required, e.g. "12.50".')
    if isinstance(value, float):
        raise NumberInvalid(
            'A decimal with a fraction travels as a string, e.g. "12.50" (a JSON float may already have lost digits).'
        )
    if isinstance(value, str):
        if len(value) > _MAX_TEXT or not _api_pattern(integer_digits, decimal_places, at_most).match(value):
            raise NumberInvalid(_text_error(value, integer_digits, decimal_places, at_most))
        number = Decimal(value)
    elif isinstance(value, int | Decimal):
        if isinstance(value, int) and abs(value) >= 10**integer_digits:
            raise NumberInvalid(f"At most {integer_digits} digits before the decimal point.")
        number = Decimal(value)
        if not number.is_finite():
            raise NumberInvalid("Must be a finite number.")
        if number < 0:
            raise NumberInvalid("Must not be negative.")
        whole, places = _shape(number)
        if whole > integer_digits:
            raise NumberInvalid(f"At most {integer_digits} digits before the decimal point.")
        if places > decimal_places:
            raise NumberInvalid(f"At most {decimal_places} decimal places.")
    else:
        raise NumberInvalid('A decimal number is required, e.g. "12.50".')
    if at_most is not None and number > at_most:
        raise NumberInvalid(f"Must be at most {at_most}.")
    if positive and number.is_zero():
        raise NumberInvalid("Must be greater than 0.")
    return number.copy_abs() if number.is_zero() else number  # never a "-0"


def integer_parse(value: object, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """A whole number from outside: a JSON integer (``int``, not a boolean); raises :class:`NumberInvalid`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise NumberInvalid("A whole number is required (a JSON integer, e.g. 5).")
    if minimum is not None and value < minimum:
        raise NumberInvalid(f"Must be at least {minimum}.")
    if maximum is not None and value > maximum:
        raise NumberInvalid(f"Must be at most {maximum}.")
    return value
