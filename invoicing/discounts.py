"""Pure coupon math (DESIGN.md "Coupons, one-off invoices"; CONVENTIONS.md §3): no Django, bare ``Decimal``.

What one invoice's coupons take, and how each spreads over the lines, in DESIGN.md's order
"lines -> subtotal -> coupon discount -> progressive billing credit -> tax":

* Coupons apply **in the order they were applied**, each on what the earlier ones left of its lines (the lines of
  its plans; every line when it lists none). Lines with nothing left (zero or negative) take no part.
* ``percentage``: that share of its lines' base (what is left of them), rounded half-up once to the minor unit.
  ``fixed``: ``min(cap, base)``; the cap is what the coupon still has (a ``once`` fixed coupon's balance) or its
  amount per invoice (``repeating``/``forever``).
* The discount of a coupon is spread over its lines **pro rata to what is left of them** by the largest-remainder
  method (:func:`discount_allocate`): each exact share is floored to the minor unit and the minor units left over go
  one each to the lines with the largest discarded remainders (ties: the earlier line). The shares add up to the
  discount exactly and never exceed what is left of a line, so a line is never discounted below zero.
* A coupon **counts** an invoice (one of its ``repeating`` periods, or its single ``once`` percentage use) only when
  the invoice has lines it applies to with something left (``base > 0``).

Worked example (DESIGN.md): lines 100.00 + 50.00 + 30.00, a fixed 10.00 coupon: exact shares 5.555..., 2.777...,
1.666...; floors 5.55 + 2.77 + 1.66 = 9.98; the 2 minor units left go to the largest remainders (0.0077...,
0.0066...): 5.55 / 2.78 / 1.67.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Context, Decimal, DivisionByZero, InvalidOperation, Overflow

from catalog.pricing import currency_exponent, quantize_minor

__all__ = ["CouponTerms", "CouponTake", "DiscountLine", "discount_allocate", "discounts_compute"]

_CTX = Context(prec=80, rounding=ROUND_HALF_UP, traps=[InvalidOperation, DivisionByZero, Overflow])
_HUNDRED = Decimal(100)

FIXED = "fixed"
PERCENTAGE = "percentage"


@dataclass(frozen=True)
class DiscountLine:
    """One invoice line for discounts: ``key`` unique per call, ``amount`` quantized to the minor unit, ``plan``
    the plan that billed it (its id; ``None`` for a line of no plan: only coupons listing no plan take it)."""

    key: Hashable
    amount: Decimal
    plan: Hashable | None = None


@dataclass(frozen=True)
class CouponTerms:
    """One applied coupon as the math needs it. ``kind`` ``fixed`` or ``percentage``; ``value`` the fixed cap
    for this invoice (quantized) or the percentage (``Decimal("10")`` = 10 %); ``plans`` the plans (ids) it is
    limited to (empty: every line)."""

    key: Hashable
    kind: str
    value: Decimal
    plans: frozenset = frozenset()


@dataclass(frozen=True)
class CouponTake:
    """What one coupon takes from one invoice: ``amount`` (the sum of ``shares``), ``shares`` per line key (only
    lines it applies to), ``counted`` whether the invoice had lines for it with something left."""

    key: Hashable
    amount: Decimal
    shares: dict[Hashable, Decimal]
    counted: bool


def _minor(currency: str) -> Decimal:
    return Decimal(1).scaleb(-currency_exponent(currency))


def discount_allocate(amount: Decimal, weights: Sequence[tuple[Hashable, Decimal]], currency: str) -> dict:
    """Spread ``amount`` over ``weights`` (positive, quantized) pro rata by the largest-remainder method.

    ``0 <= amount <= sum(weights)`` (``ValueError`` otherwise). The shares add up to ``amount`` exactly and each is
    at most its weight: a share is ``floor(amount x weight / total)`` plus at most one minor unit, and the unit is
    only given where the exact share was below the weight (the exact share equals the weight only when
    ``amount == total``, and then nothing is left over).
    """
    minor = _minor(currency)
    total = sum((w for _k, w in weights), Decimal(0))
    if amount < 0 or amount > total:
        raise ValueError(f"cannot spread {amount} over lines worth {total}")
    if any(w <= 0 for _k, w in weights):
        raise ValueError("every weight must be positive")
    if amount == 0 or not weights:
        return {key: Decimal(0).quantize(minor) for key, _w in weights}
    floors: list[Decimal] = []
    remainders: list[Decimal] = []
    for _key, weight in weights:
        exact = _CTX.divide(_CTX.multiply(amount, weight), total)
        floored = exact.quantize(minor, rounding=ROUND_FLOOR, context=_CTX)
        floors.append(floored)
        remainders.append(_CTX.subtract(exact, floored))
    leftover = int(_CTX.divide(_CTX.subtract(amount, sum(floors, Decimal(0))), minor))
    if not 0 <= leftover <= len(weights):  # pragma: no cover - floors lose less than one unit per line
        raise AssertionError("largest-remainder allocation out of range")
    order = sorted(range(len(weights)), key=lambda i: (-remainders[i], i))
    bumped = set(order[:leftover])
    return {key: floors[i] + minor if i in bumped else floors[i] for i, (key, _w) in enumerate(weights)}


def discounts_compute(lines: Sequence[DiscountLine], coupons: Sequence[CouponTerms], currency: str) -> list[CouponTake]:
    """What each coupon takes, in order, each on what the earlier ones left (see the module docstring).

    ``sum(take.amount) == sum of every line's shares``; a line's shares never exceed its amount.
    """
    left = {line.key: line.amount for line in lines}
    if len(left) != len(lines):
        raise ValueError("duplicate line key")
    takes: list[CouponTake] = []
    for coupon in coupons:
        eligible = [
            (line.key, left[line.key])
            for line in lines
            if left[line.key] > 0 and (not coupon.plans or line.plan in coupon.plans)
        ]
        base = sum((w for _k, w in eligible), Decimal(0))
        if base <= 0:
            takes.append(CouponTake(key=coupon.key, amount=Decimal(0), shares={}, counted=False))
            continue
        if coupon.kind == PERCENTAGE:
            if not 0 < coupon.value <= _HUNDRED:
                raise ValueError(f"percentage {coupon.value} outside (0, 100]")
            wanted = quantize_minor(_CTX.divide(_CTX.multiply(base, coupon.value), _HUNDRED), currency)
        elif coupon.kind == FIXED:
            if coupon.value < 0:
                raise ValueError("a fixed coupon's cap must not be negative")
            wanted = quantize_minor(coupon.value, currency)
        else:
            raise ValueError(f"unknown coupon kind {coupon.kind!r}")
        amount = min(wanted, base)
        shares = discount_allocate(amount, eligible, currency)
        for key, share in shares.items():
            left[key] -= share
        takes.append(CouponTake(key=coupon.key, amount=amount, shares=shares, counted=True))
    return takes
