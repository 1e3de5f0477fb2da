"""Human summaries of catalog rows for the admin (no JSON): tier tables, prices, entitlements, grants."""

from __future__ import annotations

from collections.abc import Iterable

from core.money import format_decimal

from .models import Entitlement, PlanCreditGrant, Price, Tier
from .price_models import price_model, tiers_text
from .quote import price_terms


def tiers_summary(tiers: Iterable[Tier], currency: str) -> str:
    """``1–1,000: $1.00/unit; 1,001–5,000: $0.80/unit + $50.00; 5,001 and up: $0.50/unit + $100.00``
    (:func:`catalog.price_models.tiers_text` of the rows in position order)."""
    return tiers_text(sorted(tiers, key=lambda t: (t.position, t.id or 0)), currency)


def price_summary(price: Price, currency: str) -> str:
    """One line a finance person can read: what is charged, per what, when (the model's row says what)."""
    timing = "in advance" if price.timing == Price.Timing.IN_ADVANCE else "in arrears"
    meter = f" of {price.meter.key}" if price.meter_id else ""
    what = price_model(price.model).summary(price_terms(price), currency, meter)
    return f"{what} ({timing})"


def entitlement_summary(row: Entitlement) -> str:
    if not row.enabled:
        return "disabled"
    if row.feature.type == "static":
        return f"value {row.value}"
    if row.feature.type == "metered":
        limit = "unlimited" if row.limit is None else f"limit {format_decimal(row.limit)}"
        reset = dict(Entitlement.Reset.choices)[row.reset].lower()
        return f"{limit}, resets {reset}{', soft' if row.soft else ''}"
    return "enabled"


def grant_summary(row: PlanCreditGrant) -> str:
    cadence = "every period" if row.cadence == PlanCreditGrant.Cadence.PER_PERIOD else "once at start"
    rollover = (
        "all unused roll over"
        if row.rollover_cap is None
        else ("no rollover" if row.rollover_cap == 0 else f"rollover up to {format_decimal(row.rollover_cap)}")
    )
    expiry = (
        "never expire by age"
        if row.expire_after_periods is None
        else f"expire after {row.expire_after_periods} period(s)"
    )
    return f"{format_decimal(row.credits)} credits {cadence}; {rollover}; {expiry}; priority {row.priority}"
