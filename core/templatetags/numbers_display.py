"""Template filters for numbers a person reads (core.money's display rule): ``{% load numbers_display %}``.

``{{ wallet.balance|credits }}`` -> ``2,000``; ``{{ payment.amount|money:payment.currency }}`` -> ``$121.80``;
``{{ rate.percentage|percent }}`` -> ``20%``.
"""

from __future__ import annotations

from decimal import Decimal

from django import template

from core.money import format_decimal, format_money, format_percent

register = template.Library()


def _decimal(value) -> Decimal | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, Decimal) else Decimal(str(value))


@register.filter
def credits(value) -> str:
    """A credit amount or a quantity: no trailing zeros, thousands separators."""
    return format_decimal(_decimal(value))


@register.filter
def money(value, currency: str) -> str:
    """An amount in ``currency``: its symbol and at least its minor unit."""
    return format_money(_decimal(value), currency)


@register.filter
def percent(value) -> str:
    return format_percent(_decimal(value))
