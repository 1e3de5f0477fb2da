"""From a stored Price (with its tiers) to a pricing computation (catalog.pricing)."""

from __future__ import annotations

from decimal import Decimal

from . import pricing
from .models import Price


def price_tiers(price: Price) -> list[pricing.Tier]:
    """The price's tiers in order. Uses prefetched ``tiers`` when present (no extra query)."""
    rows = sorted(price.tiers.all(), key=lambda t: (t.position, t.id))
    return [pricing.Tier(up_to=t.up_to, unit_amount=t.unit_amount, flat_amount=t.flat_amount) for t in rows]


def price_quote(price: Price, quantity: Decimal) -> pricing.PriceResult:
    """The unrounded amount of ``quantity`` units at ``price`` with its breakdown (flat fees ignore quantity)."""
    return pricing.price_compute(
        price.model,
        quantity,
        amount=price.amount,
        unit_amount=price.unit_amount,
        package_size=price.package_size,
        package_amount=price.package_amount,
        tier_mode=price.tier_mode or None,
        tiers=price_tiers(price) if price.model == Price.Model.TIERED else (),
    )
