"""Pure pricing math for catalog prices (DESIGN.md "Catalog"; CONVENTIONS.md §3).

No Django, no ``Money``: amounts are bare :class:`~decimal.Decimal` values in the price's currency
(major units, e.g. dollars), quantities are ``Decimal`` counts of the meter's unit (may be
fractional). The service layer attaches the currency and builds ``Money`` at its boundary. Which
function prices which price model is the model's row in ``catalog/price_models.py``.

Invariants and rules:

* Never ``float``. Inputs are ``Decimal`` or ``int`` (``str`` is accepted where noted and parsed
  exactly); floats and non-finite decimals raise :class:`PricingError`.
* Every ``price_*`` function returns the **unrounded**, exact amount. Rounding happens once per
  invoice line, with :func:`quantize_minor` (``ROUND_HALF_UP`` to the currency's minor unit).
* Products and sums are computed in a private 80-digit context that traps ``Inexact``, so they are
  exact or they raise; the thread's default decimal context is never used. Only :func:`prorate`
  divides, and it rounds to 40 significant digits (still far below the minor unit).
* Quantity zero gives amount ``0`` and an empty breakdown for every usage model (``per_unit``,
  ``package``, ``tiered``): **no tier is entered with zero units**, so no tier flat amount is
  charged.
* A **negative quantity** (net usage below zero: only a meter with ``allow_negative`` can produce one,
  when corrections outweigh usage) is charged exactly like zero, in every usage model: amount ``0``, no
  tier entered, no package started, and the explanation says the usage is below zero. A usage amount is
  never negative; money goes back to a customer through a credit note, never through a negative usage
  line (docs/billing-rules.md). The quantity is still checked: it must be a finite Decimal or int.
* A tier ``i`` covers the half-open range ``(previous up_to, up_to]``: bounds are inclusive upper
  bounds, the first tier starts after 0, and the last tier is unbounded (``up_to=None``).
* Graduated: each unit is charged at its own tier's rate, plus the flat amount of every *entered*
  tier (one that receives more than zero units). Volume: all units at the rate of the tier the
  total quantity falls in, plus that tier's flat amount.
* ``breakdown`` is populated only for tiered prices; ``amount`` of a tiered result always equals
  the sum of its pieces' amounts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import (
    ROUND_HALF_UP,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
    localcontext,
)
from typing import Any

from core.currencies import CURRENCY_EXPONENTS, DEFAULT_CURRENCY_EXPONENT, currency_exponent

__all__ = [
    "CURRENCY_EXPONENTS",
    "DEFAULT_CURRENCY_EXPONENT",
    "PriceResult",
    "PricingError",
    "Tier",
    "TIER_MODES",
    "TierPiece",
    "currency_exponent",
    "price_flat_fee",
    "price_graduated",
    "price_package",
    "price_per_unit",
    "price_volume",
    "prorate",
    "quantize_minor",
    "validate_tiers",
]


# Exact arithmetic: 80 significant digits is far beyond 28-digit money columns times 12-dp unit
# prices; trapping Inexact turns any silent rounding into an error instead of a wrong bill.
_EXACT = Context(prec=80, rounding=ROUND_HALF_UP, traps=[InvalidOperation, DivisionByZero, Overflow, Inexact])
# Rounding context for quantize (rounding is the point there) and for proration's division.
_ROUNDING = Context(prec=80, rounding=ROUND_HALF_UP, traps=[InvalidOperation, DivisionByZero, Overflow])
_DIVISION = Context(prec=40, rounding=ROUND_HALF_UP, traps=[InvalidOperation, DivisionByZero, Overflow])

_ZERO = Decimal(0)

TIER_MODES: tuple[str, ...] = ("graduated", "volume")


class PricingError(ValueError):
    """Invalid pricing input; ``field`` names the offending input (form/field-error friendly)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _to_decimal(value: object, field: str) -> Decimal:
    """Parse ``value`` (Decimal, int or str) into a finite Decimal; floats and bools are refused."""
    if isinstance(value, bool) or isinstance(value, float):
        raise PricingError(field, "must be a Decimal, int or str, never a float")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise PricingError(field, f"{value!r} is not a decimal number") from None
    else:
        raise PricingError(field, f"must be a Decimal, int or str, not {type(value).__name__}")
    if not result.is_finite():
        raise PricingError(field, "must be a finite number")
    return result


def _non_negative(value: object, field: str) -> Decimal:
    result = _to_decimal(value, field)
    if result < 0:
        raise PricingError(field, "must not be negative")
    return result


def _fmt(value: Decimal) -> str:
    """Render an amount for humans: thousands separators, no exponent, no currency symbol, and no trailing
    zeros past the second decimal place (stored 12-place values read ``0.0003``, ``11.00``, not ``11.000000000000``).
    """
    trimmed = value.normalize() if value == value.to_integral_value() or value.as_tuple().exponent < -2 else value
    if trimmed.as_tuple().exponent > -2:
        trimmed = trimmed.quantize(Decimal("0.01"))
    return f"{trimmed:,f}"


def _fmt_units(value: Decimal) -> str:
    """Render a quantity for humans: thousands separators and no trailing zeros (``120,000``, ``2.5``)."""
    normalized = value.normalize()
    if normalized == normalized.to_integral_value():
        normalized = normalized.quantize(Decimal(1))
    return f"{normalized:,f}"


def _plain(value: Decimal) -> str:
    """Decimal as a JSON-safe string without exponent notation (``1E-9`` -> ``"0.000000001"``)."""
    return f"{value:f}"


def _units_label(quantity: Decimal) -> str:
    return f"{_fmt_units(quantity)} {'unit' if quantity == 1 else 'units'}"


def quantize_minor(amount: Decimal, currency: str) -> Decimal:
    """Round ``amount`` half-up to ``currency``'s minor unit (JPY 1, USD 0.01, KWD 0.001).

    The rounding mode is passed explicitly, never taken from the thread's decimal context. Halves
    round away from zero (``-0.005`` USD -> ``-0.01``), as ``ROUND_HALF_UP`` defines.
    """
    exponent = Decimal(1).scaleb(-currency_exponent(currency))
    return _to_decimal(amount, "amount").quantize(exponent, rounding=ROUND_HALF_UP, context=_ROUNDING)


@dataclass(frozen=True)
class Tier:
    """One price tier. ``up_to`` is the inclusive upper bound in units (``None`` = unbounded, last
    tier only); ``unit_amount`` is per unit and ``flat_amount`` once per entered tier (graduated)
    or once if the total falls in this tier (volume), both in major currency units.

    ``int`` and ``str`` inputs are converted to ``Decimal`` on construction; floats are refused.
    """

    up_to: Decimal | None
    unit_amount: Decimal
    flat_amount: Decimal = _ZERO

    def __post_init__(self) -> None:
        if self.up_to is not None:
            object.__setattr__(self, "up_to", _to_decimal(self.up_to, "up_to"))
        object.__setattr__(self, "unit_amount", _to_decimal(self.unit_amount, "unit_amount"))
        object.__setattr__(self, "flat_amount", _to_decimal(self.flat_amount, "flat_amount"))


@dataclass(frozen=True)
class TierPiece:
    """The part of a tiered price charged in one tier.

    ``tier`` is 1-based. The tier spans ``(first_unit, up_to]`` where ``first_unit`` is the
    exclusive lower bound (the previous tier's ``up_to``, or 0). ``units`` were charged at
    ``unit_amount``; ``amount = units * unit_amount + flat_amount``, exact and unrounded.
    """

    tier: int
    first_unit: Decimal
    up_to: Decimal | None
    units: Decimal
    unit_amount: Decimal
    flat_amount: Decimal
    amount: Decimal

    def to_details(self) -> dict[str, Any]:
        """JSON-safe dict: decimals as strings, ``up_to`` ``None`` when unbounded."""
        return {
            "tier": self.tier,
            "first_unit": _plain(self.first_unit),
            "up_to": None if self.up_to is None else _plain(self.up_to),
            "units": _plain(self.units),
            "unit_amount": _plain(self.unit_amount),
            "flat_amount": _plain(self.flat_amount),
            "amount": _plain(self.amount),
        }


@dataclass(frozen=True)
class PriceResult:
    """Outcome of pricing a quantity.

    ``amount`` is exact and UNROUNDED, in major units of the price's currency; round it once per
    invoice line with :func:`quantize_minor`. ``breakdown`` lists entered tiers (tiered prices
    only). ``explanation`` is one currency-agnostic human line answering "why is this line $X?".
    """

    amount: Decimal
    breakdown: tuple[TierPiece, ...] = ()
    explanation: str = ""

    def to_details(self) -> dict[str, Any]:
        """JSON-safe dict for an invoice line's details (decimals as strings, no floats)."""
        return {
            "amount": _plain(self.amount),
            "breakdown": [piece.to_details() for piece in self.breakdown],
            "explanation": self.explanation,
        }


def validate_tiers(tiers: Sequence[Tier]) -> None:
    """Raise :class:`PricingError` (field ``"tiers"``) unless ``tiers`` is a valid tier table.

    Valid: at least one tier; every bounded ``up_to`` > 0 and strictly greater than the previous
    one; only the last tier is unbounded and the last tier must be unbounded; no negative
    ``unit_amount`` or ``flat_amount``.
    """
    if len(tiers) == 0:
        raise PricingError("tiers", "at least one tier is required")
    previous: Decimal = _ZERO
    last = len(tiers) - 1
    for index, tier in enumerate(tiers):
        number = index + 1
        if not isinstance(tier, Tier):
            raise PricingError("tiers", f"tier {number} is not a Tier")
        if tier.unit_amount < 0:
            raise PricingError("tiers", f"tier {number}: unit amount must not be negative")
        if tier.flat_amount < 0:
            raise PricingError("tiers", f"tier {number}: flat amount must not be negative")
        if tier.up_to is None:
            if index != last:
                raise PricingError("tiers", f"tier {number}: only the last tier may be unbounded")
            continue
        if index == last:
            raise PricingError("tiers", f"tier {number}: the last tier must be unbounded (no up_to)")
        if tier.up_to <= 0:
            raise PricingError("tiers", f"tier {number}: up_to must be greater than 0")
        if tier.up_to <= previous:
            raise PricingError(
                "tiers",
                f"tier {number}: up_to {_fmt(tier.up_to)} must be greater than tier {number - 1}'s {_fmt(previous)}",
            )
        previous = tier.up_to


def _quantity(quantity: object) -> Decimal:
    """A finite quantity; it may be negative (net usage below zero, charged as zero)."""
    return _to_decimal(quantity, "quantity")


def _zero_result(quantity: Decimal) -> PriceResult:
    """Nothing to charge: quantity zero, or below zero (net usage after corrections)."""
    if quantity < 0:
        return PriceResult(
            amount=_ZERO, breakdown=(), explanation=f"{_units_label(quantity)}: usage below zero, nothing to charge"
        )
    return PriceResult(amount=_ZERO, breakdown=(), explanation=f"{_units_label(quantity)}: nothing to charge")


def price_flat_fee(amount: Decimal) -> PriceResult:
    """A fixed ``amount`` per billing period, independent of usage (not a usage model)."""
    value = _non_negative(amount, "amount")
    return PriceResult(amount=value, breakdown=(), explanation=f"flat fee {_fmt(value)}")


def price_per_unit(quantity: Decimal, unit_amount: Decimal) -> PriceResult:
    """``quantity * unit_amount``, exact (unit amounts may have 12 decimal places)."""
    qty = _quantity(quantity)
    unit = _non_negative(unit_amount, "unit_amount")
    if qty <= 0:
        return _zero_result(qty)
    with localcontext(_EXACT):
        amount = qty * unit
    return PriceResult(amount=amount, breakdown=(), explanation=f"{_units_label(qty)} × {_fmt(unit)}")


def price_package(quantity: Decimal, package_size: Decimal, package_amount: Decimal) -> PriceResult:
    """``ceil(quantity / package_size) * package_amount``; a started package is charged in full.

    ``package_size`` must be > 0 (it may be fractional).
    """
    qty = _quantity(quantity)
    size = _to_decimal(package_size, "package_size")
    if size <= 0:
        raise PricingError("package_size", "must be greater than 0")
    price = _non_negative(package_amount, "package_amount")
    if qty <= 0:
        return _zero_result(qty)
    with localcontext(_EXACT):
        whole, remainder = divmod(qty, size)
        packages = whole + 1 if remainder != 0 else whole
        amount = packages * price
    label = "package" if packages == 1 else "packages"
    explanation = f"{_units_label(qty)}: {_fmt_units(packages)} {label} of {_fmt_units(size)} × {_fmt(price)}"
    return PriceResult(amount=amount, breakdown=(), explanation=explanation)


def _piece(number: int, first_unit: Decimal, tier: Tier, units: Decimal) -> TierPiece:
    with localcontext(_EXACT):
        amount = units * tier.unit_amount + tier.flat_amount
    return TierPiece(
        tier=number,
        first_unit=first_unit,
        up_to=tier.up_to,
        units=units,
        unit_amount=tier.unit_amount,
        flat_amount=tier.flat_amount,
        amount=amount,
    )


def _piece_text(piece: TierPiece) -> str:
    text = f"{_fmt_units(piece.units)} × {_fmt(piece.unit_amount)}"
    if piece.flat_amount != 0:
        text += f" + {_fmt(piece.flat_amount)} flat"
    return text


def price_graduated(quantity: Decimal, tiers: Sequence[Tier]) -> PriceResult:
    """Graduated tiers: each unit at its own tier's rate, plus each entered tier's flat amount.

    Tier ``i`` covers ``(tiers[i-1].up_to, tiers[i].up_to]``. A tier is entered when it receives
    more than zero units, so quantity 0 (or below zero) enters no tier and costs 0.
    """
    qty = _quantity(quantity)
    validate_tiers(tiers)
    if qty <= 0:
        return _zero_result(qty)
    pieces: list[TierPiece] = []
    lower = _ZERO
    for index, tier in enumerate(tiers):
        if qty <= lower:
            break
        upper = qty if tier.up_to is None else min(qty, tier.up_to)
        with localcontext(_EXACT):
            units = upper - lower
        pieces.append(_piece(index + 1, lower, tier, units))
        if tier.up_to is None:
            break
        lower = tier.up_to
    with localcontext(_EXACT):
        amount = sum((piece.amount for piece in pieces), _ZERO)
    explanation = f"{_units_label(qty)}: " + " + ".join(_piece_text(piece) for piece in pieces)
    return PriceResult(amount=amount, breakdown=tuple(pieces), explanation=explanation)


def price_volume(quantity: Decimal, tiers: Sequence[Tier]) -> PriceResult:
    """Volume tiers: all units at the rate of the tier the total falls in, plus that tier's flat.

    The total falls in the first tier whose inclusive ``up_to`` is >= quantity (or the unbounded
    last tier). Quantity 0 (or below zero) falls in no tier and costs 0. The single breakdown piece names that tier
    and carries all ``quantity`` units.
    """
    qty = _quantity(quantity)
    validate_tiers(tiers)
    if qty <= 0:
        return _zero_result(qty)
    lower = _ZERO
    for index, tier in enumerate(tiers):
        if tier.up_to is None or qty <= tier.up_to:
            piece = _piece(index + 1, lower, tier, qty)
            explanation = f"{_units_label(qty)}: {_piece_text(piece)} (volume tier {piece.tier})"
            return PriceResult(amount=piece.amount, breakdown=(piece,), explanation=explanation)
        lower = tier.up_to
    raise AssertionError("validate_tiers guarantees an unbounded last tier")  # pragma: no cover


def prorate(amount: Decimal, days_in_part: int, days_in_period: int) -> Decimal:
    """``amount * days_in_part / days_in_period``, unrounded (40 significant digits).

    Requires ``0 < days_in_part <= days_in_period``; the result therefore lies between 0 and
    ``amount`` (inclusive) for a non-negative ``amount``, and equals ``amount`` for a full period.
    """
    value = _to_decimal(amount, "amount")
    for field, days in (("days_in_part", days_in_part), ("days_in_period", days_in_period)):
        if isinstance(days, bool) or not isinstance(days, int):
            raise PricingError(field, "must be an int number of days")
    if days_in_period <= 0:
        raise PricingError("days_in_period", "must be greater than 0")
    if not 0 < days_in_part <= days_in_period:
        raise PricingError("days_in_part", "must be greater than 0 and at most days_in_period")
    if days_in_part == days_in_period:
        return value
    with localcontext(_EXACT):
        numerator = value * days_in_part
    return _DIVISION.divide(numerator, Decimal(days_in_period))
