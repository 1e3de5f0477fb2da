"""Pure math of commitments and progressive billing (DESIGN.md "Commitments and progressive billing").

No Django: bare :class:`~decimal.Decimal` amounts in major units of one currency.

**Threshold levels.** A version's thresholds are fixed amounts ``f1 < f2 < ... < fk`` and at most one recurring
amount ``r`` (the last). The levels a subscription's lifetime usage amount can reach are ``f1, ..., fk`` and then
``fk + r, fk + 2r, ...`` (``r, 2r, ...`` without fixed thresholds): a recurring threshold never fires at its own
value when fixed ones exist, but at each further multiple above the highest fixed one (API.md's alert rule, the
same words). A level is reached when the amount is **at or above** it.

A **crossing** is one evaluation that finds the amount at or above levels not reached before: ``first`` is the
lowest such level (the next level after the highest one reached earlier, so two evaluations starting from the
same state always name the same ``first``: the database keeps one invoice per subscription and ``first``), and
``highest`` the highest level at or below the amount (later crossings start above it). Levels reached together
make one crossing, hence one invoice.

**Credit allocation.** A progressive billing credit is spread over the usage lines in proportion to their
amounts by the largest-remainder method (floors to the minor unit, the leftover units to the largest
remainders, ties to the earlier line), so the shares sum exactly to the credit and none exceeds its line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Context, Decimal, localcontext

__all__ = ["Crossing", "credit_allocate", "crossing_find", "level_next", "level_highest"]

_DIVIDE = Context(prec=60, rounding=ROUND_HALF_UP)
ThresholdSpec = tuple[Decimal, bool]  # (amount, recurring)


@dataclass(frozen=True)
class Crossing:
    """Levels reached by one evaluation: the lowest not reached before and the highest reached."""

    first: Decimal
    highest: Decimal


def _split(thresholds: Sequence[ThresholdSpec]) -> tuple[list[Decimal], Decimal | None]:
    fixed = sorted(amount for amount, recurring in thresholds if not recurring)
    recurring = [amount for amount, is_recurring in thresholds if is_recurring]
    return fixed, (recurring[0] if recurring else None)


def level_next(thresholds: Sequence[ThresholdSpec], reached: Decimal | None) -> Decimal | None:
    """The lowest level above ``reached`` (``None``: nothing reached yet); ``None`` when there is none."""
    fixed, step = _split(thresholds)
    for level in fixed:
        if reached is None or level > reached:
            return level
    if step is None or step <= 0:
        return None
    base = fixed[-1] if fixed else Decimal(0)
    if reached is None or reached < base + step:
        return base + step
    with localcontext(_DIVIDE):
        n = ((reached - base) / step).to_integral_value(rounding=ROUND_FLOOR) + 1
    return base + n * step


def level_highest(thresholds: Sequence[ThresholdSpec], amount: Decimal) -> Decimal | None:
    """The highest level at or below ``amount``; ``None`` when the amount is below every level."""
    fixed, step = _split(thresholds)
    base = fixed[-1] if fixed else Decimal(0)
    if step is not None and step > 0 and amount >= base + step:
        with localcontext(_DIVIDE):
            n = ((amount - base) / step).to_integral_value(rounding=ROUND_FLOOR)
        return base + n * step
    below = [level for level in fixed if level <= amount]
    return below[-1] if below else None


def crossing_find(thresholds: Sequence[ThresholdSpec], *, reached: Decimal | None, amount: Decimal) -> Crossing | None:
    """The crossing an evaluation at lifetime usage ``amount`` makes after ``reached``; ``None`` when no level
    above ``reached`` is reached."""
    first = level_next(thresholds, reached)
    if first is None or amount < first:
        return None
    highest = level_highest(thresholds, amount)
    assert highest is not None and highest >= first  # first is a level at or below amount
    return Crossing(first=first, highest=highest)


def credit_allocate(credit: Decimal, amounts: Sequence[Decimal], minor: Decimal) -> list[Decimal]:
    """Spread ``credit`` over ``amounts`` (each >= 0, quantized to ``minor``) pro rata, largest remainder.

    ``credit`` must be quantized and at most ``sum(amounts)``. Returns one share per amount, summing to
    ``credit``, each between 0 and its amount.
    """
    total = sum(amounts, Decimal(0))
    if credit < 0 or credit > total:
        raise ValueError(f"credit {credit} must be between 0 and the lines' sum {total}")
    if credit == 0:
        return [Decimal(0).quantize(minor) for _ in amounts]
    with localcontext(_DIVIDE):
        exact = [credit * a / total for a in amounts]
    floors = [e.quantize(minor, rounding=ROUND_FLOOR) for e in exact]
    leftover = int((credit - sum(floors, Decimal(0))) / minor)
    order = sorted(range(len(amounts)), key=lambda i: (-(exact[i] - floors[i]), i))
    bumped = set(order[:leftover])
    return [floors[i] + minor if i in bumped else floors[i] for i in range(len(amounts))]
