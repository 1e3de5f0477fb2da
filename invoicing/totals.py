"""Pure invoice totals math (DESIGN.md "Invoicing"; CONVENTIONS.md §3).

No Django, no ``Money``: amounts are bare :class:`~decimal.Decimal` values in major units of one
``currency`` (never mixed). Rules, in DESIGN.md's order "lines -> subtotal -> coupon discount -> tax -> total":

* Each line amount arrives already rounded half-up to the currency's minor unit (callers use
  :func:`catalog.pricing.quantize_minor` once per line); an unquantized line raises ``ValueError``.
* ``subtotal`` is the exact sum of the rounded lines.
* A line may carry its share of the coupon discount (``LineAmount.discount``, already spread over the lines by
  ``invoicing.discounts``); ``discount`` is the sum of the shares, and tax is computed on each line's amount
  less its discount.
* Tax is computed **once per tax rate** on the sum of the lines that rate applies to, then rounded
  half-up to the minor unit, so there is no per-line penny drift.
* A line's ``credit`` (its share of the invoice's progressive billing credit, already quantized, at most
  its amount less its discount) is deducted **before tax**, after the discount: each rate's taxable base is
  the sum of its lines' ``amount - discount - credit``, and ``progressive_billing_credit`` is the sum of the
  lines' credits (DESIGN.md's order: lines -> subtotal -> coupon discount -> progressive billing credit -> tax
  -> total).
* ``total = subtotal - discount - progressive_billing_credit + tax`` where ``tax`` is the sum of the rounded
  per-rate taxes.
* Each rate's tax is allocated back to its lines with the largest-remainder method, so the
  per-line shares sum exactly to each rate's tax, and ``sum(line_tax.values()) == tax``.

All returned amounts are quantized to the currency's minor unit (e.g. ``Decimal("24.80")``).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from decimal import (
    ROUND_FLOOR,
    ROUND_HALF_UP,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
    localcontext,
)

from catalog.pricing import currency_exponent, quantize_minor

__all__ = ["LineAmount", "TaxAmount", "Totals", "totals_compute"]

# Exact arithmetic (sums and products of quantized amounts and percentages); Inexact is trapped so
# a silently rounded intermediate can never reach an invoice.
_EXACT = Context(prec=80, rounding=ROUND_HALF_UP, traps=[InvalidOperation, DivisionByZero, Overflow, Inexact])
_ROUNDING = Context(prec=80, rounding=ROUND_HALF_UP, traps=[InvalidOperation, DivisionByZero, Overflow])
_HUNDRED = Decimal(100)


@dataclass(frozen=True)
class LineAmount:
    """One invoice line for totals: ``key`` identifies it (any hashable, unique per call),
    ``amount`` is already quantized to the minor unit, ``tax_rates`` are ``(code, percentage)``
    pairs with percentages in percent (``Decimal("20")`` = 20 %). ``discount``: the line's share of the coupon
    discount (quantized, ``0 <= discount <= amount`` for a positive line), taken off before tax."""

    key: Hashable
    amount: Decimal
    tax_rates: tuple[tuple[str, Decimal], ...] = ()
    discount: Decimal = Decimal(0)
    credit: Decimal = Decimal(0)

    @property
    def taxable(self) -> Decimal:
        """What tax applies to: the amount less the line's discount and progressive billing credit."""
        return self.amount - self.discount - self.credit


@dataclass(frozen=True)
class TaxAmount:
    """Tax of one rate: ``taxable`` is the sum of the lines it applies to, ``amount`` is
    ``taxable * percentage / 100`` rounded half-up once to the minor unit."""

    code: str
    percentage: Decimal
    taxable: Decimal
    amount: Decimal


@dataclass(frozen=True)
class Totals:
    """Invoice totals, all quantized to the minor unit.

    Invariants: ``subtotal == sum(line amounts)``; ``discount == sum(line discounts)``;
    ``progressive_billing_credit == sum(line credits)``; ``tax == sum(t.amount for t in taxes)``;
    ``total == subtotal - discount - progressive_billing_credit + tax``;
    ``sum(line_tax.values()) == tax`` and, per rate, the lines' shares sum to that rate's tax. ``line_tax`` has an
    entry (possibly zero) for every line key.
    """

    subtotal: Decimal
    taxes: tuple[TaxAmount, ...]
    tax: Decimal
    total: Decimal
    line_tax: dict[Hashable, Decimal]
    discount: Decimal = Decimal(0)
    progressive_billing_credit: Decimal = Decimal(0)


def _check_decimal(value: object, what: str) -> Decimal:
    if not isinstance(value, Decimal) or isinstance(value, bool):
        raise ValueError(f"{what} must be a Decimal, not {type(value).__name__}")
    if not value.is_finite():
        raise ValueError(f"{what} must be finite")
    return value


def _allocate(tax: Decimal, shares: list[tuple[Hashable, Decimal]], minor: Decimal) -> list[tuple[Hashable, Decimal]]:
    """Split ``tax`` over lines proportionally to their exact ``shares`` (largest remainder).

    Each share is floored to the minor unit; the minor units left over (``tax`` minus the floors,
    always between 0 and ``len(shares)``) go one each to the lines with the largest discarded
    remainders, ties to the earlier line. The result sums exactly to ``tax``.
    """
    floors: list[Decimal] = []
    remainders: list[Decimal] = []
    with localcontext(_EXACT):
        for _key, share in shares:
            floored = share.quantize(minor, rounding=ROUND_FLOOR, context=_ROUNDING)
            floors.append(floored)
            remainders.append(share - floored)
        leftover_units = int((tax - sum(floors, Decimal(0))) / minor)
    if not 0 <= leftover_units <= len(shares):  # pragma: no cover - guaranteed by half-up rounding
        raise AssertionError("largest-remainder allocation out of range")
    order = sorted(range(len(shares)), key=lambda i: (-remainders[i], i))
    bumped = set(order[:leftover_units])
    with localcontext(_EXACT):
        return [(key, floors[i] + minor if i in bumped else floors[i]) for i, (key, _share) in enumerate(shares)]


def totals_compute(lines: Sequence[LineAmount], currency: str) -> Totals:
    """Compute subtotal, per-rate taxes, tax, total and per-line tax shares for ``lines``.

    Raises ``ValueError`` for a line amount not quantized to ``currency``'s minor unit, a duplicate
    line key, a negative percentage, or a rate listed twice on the same line. Taxes are keyed by
    ``(code, percentage)`` and listed in order of first appearance.
    """
    minor = Decimal(1).scaleb(-currency_exponent(currency))
    zero = quantize_minor(Decimal(0), currency)

    line_tax: dict[Hashable, Decimal] = {}
    rate_lines: dict[tuple[str, Decimal], list[LineAmount]] = {}
    subtotal = zero
    discount = zero
    credits = zero
    for line in lines:
        amount = _check_decimal(line.amount, f"line {line.key!r} amount")
        if quantize_minor(amount, currency) != amount:
            raise ValueError(f"line {line.key!r} amount {amount} is not quantized to {currency}'s minor unit")
        if line.key in line_tax:
            raise ValueError(f"duplicate line key {line.key!r}")
        line_tax[line.key] = zero
        line_discount = _check_decimal(line.discount, f"line {line.key!r} discount")
        if quantize_minor(line_discount, currency) != line_discount or line_discount < 0:
            raise ValueError(f"line {line.key!r} discount {line_discount} is not a quantized amount >= 0")
        credit = _check_decimal(line.credit, f"line {line.key!r} credit")
        if quantize_minor(credit, currency) != credit or not 0 <= credit <= max(amount - line_discount, Decimal(0)):
            raise ValueError(
                f"line {line.key!r} credit {credit} must be quantized and between 0 and its amount less its discount"
            )
        with localcontext(_EXACT):
            subtotal += amount
            discount += line_discount
            credits += credit
        seen: set[tuple[str, Decimal]] = set()
        for code, percentage in line.tax_rates:
            _check_decimal(percentage, f"tax rate {code!r} percentage")
            if percentage < 0:
                raise ValueError(f"tax rate {code!r} percentage must not be negative")
            rate = (code, percentage)
            if rate in seen:
                raise ValueError(f"tax rate {code!r} {percentage}% listed twice on line {line.key!r}")
            seen.add(rate)
            rate_lines.setdefault(rate, []).append(line)

    taxes: list[TaxAmount] = []
    tax = zero
    for (code, percentage), applied in rate_lines.items():
        with localcontext(_EXACT):
            taxable = sum((line.taxable for line in applied), zero)
            # Exact: dividing by 100 only shifts the exponent.
            exact_tax = taxable * percentage / _HUNDRED
            shares = [(line.key, line.taxable * percentage / _HUNDRED) for line in applied]
        # DESIGN.md: tax computed once per rate on the sum of its lines, then rounded half-up.
        rate_tax = quantize_minor(exact_tax, currency)
        taxes.append(
            TaxAmount(
                code=code,
                percentage=percentage,
                taxable=quantize_minor(taxable, currency),
                amount=rate_tax,
            )
        )
        with localcontext(_EXACT):
            tax += rate_tax
            for key, share in _allocate(rate_tax, shares, minor):
                line_tax[key] += share

    subtotal = quantize_minor(subtotal, currency)
    discount = quantize_minor(discount, currency)
    tax = quantize_minor(tax, currency)
    with localcontext(_EXACT):
        total = subtotal - discount - credits + tax
    return Totals(
        subtotal=subtotal,
        taxes=tuple(taxes),
        tax=tax,
        total=quantize_minor(total, currency),
        line_tax={key: quantize_minor(value, currency) for key, value in line_tax.items()},
        discount=discount,
        progressive_billing_credit=quantize_minor(credits, currency),
    )
