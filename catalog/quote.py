"""From a stored Price (with its tiers) to its model's functions (catalog/price_models.py, catalog/pricing.py)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from . import pricing
from .models import Price
from .price_models import PRICE_COLUMNS, PRICE_FIELDS, price_model


def price_tiers(price: Price) -> list[pricing.Tier]:
    """The price's tiers in order. Uses prefetched ``tiers`` when present (no extra query)."""
    rows = sorted(price.tiers.all(), key=lambda t: (t.position, t.id))
    return [pricing.Tier(up_to=t.up_to, unit_amount=t.unit_amount, flat_amount=t.flat_amount) for t in rows]


def price_terms(price: Price) -> dict[str, Any]:
    """The price's values of its model's fields (an empty choice is ``None``; ``tiers`` in order)."""
    model = price_model(price.model)
    terms: dict[str, Any] = {}
    for name in model.fields:
        if name in PRICE_COLUMNS:
            value = getattr(price, name)
            terms[name] = None if PRICE_FIELDS[name].kind == "choice" and not value else value
    if model.uses_tiers:
        terms["tiers"] = price_tiers(price)
    return terms


def price_quote(price: Price, quantity: Decimal) -> pricing.PriceResult:
    """The unrounded amount of ``quantity`` units at ``price`` with its breakdown (flat fees ignore quantity)."""
    return price_model(price.model).price(quantity, price_terms(price))


def price_line_unit_amount(price: Price) -> Decimal | None:
    """The unit price an invoice line of this price shows (per-unit prices), else ``None``."""
    return price_model(price.model).line_unit_amount(price_terms(price))


def price_included_units(price: Price) -> Decimal | None:
    """Units the price includes for free (a graduated price's free first tier), else ``None``."""
    return price_model(price.model).included_units(price_terms(price))
