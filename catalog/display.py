"""Human summaries of catalog rows for the admin (no JSON): tier tables, prices, entitlements, grants."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from core.money import format_decimal, format_money

from .models import Entitlement, PlanCreditGrant, Price, Tier


def tiers_summary(tiers: Iterable[Tier], currency: str) -> str:
    """``1–1,000: $1.00/unit; 1,001–5,000: $0.80/unit + $50.00; 5,001 and up: $0.50/unit + $100.00``.

    A tier after a whole-number bound starts at the next whole unit; after a fractional bound it reads
    "over 2.5". Tier flat amounts are shown as "+ $X".
    """
    parts: list[str] = []
    previous: Decimal | None = None
    for tier in sorted(tiers, key=lambda t: (t.position, t.id or 0)):
        if previous is None:
            start = "1"
        elif previous == previous.to_integral_value():
            start = format_decimal(previous + 1)
        else:
            start = f"over {format_decimal(previous)}"
        if tier.up_to is None:
            span = f"{start} and up" if not start.startswith("over") else start
        else:
            span = f"{start}–{format_decimal(tier.up_to)}" if not start.startswith("over") else f"{start} to {format_decimal(tier.up_to)}"
        text = f"{span}: {format_money(tier.unit_amount, currency)}/unit"
        if tier.flat_amount:
            text += f" + {format_money(tier.flat_amount, currency)}"
        parts.append(text)
        previous = tier.up_to
    return "; ".join(parts) if parts else "no tiers yet"


def price_summary(price: Price, currency: str) -> str:
    """One line a finance person can read: what is charged, per what, when."""
    timing = "in advance" if price.timing == Price.Timing.IN_ADVANCE else "in arrears"
    meter = f" of {price.meter.key}" if price.meter_id else ""
    if price.model == Price.Model.FLAT_FEE:
        what = f"{format_money(price.amount, currency)} per period"
    elif price.model == Price.Model.PER_UNIT:
        what = f"{format_money(price.unit_amount, currency)} per unit{meter}"
    elif price.model == Price.Model.PACKAGE:
        what = f"{format_money(price.package_amount, currency)} per {format_decimal(price.package_size)} units{meter}"
    else:
        mode = "graduated" if price.tier_mode == Price.TierMode.GRADUATED else "volume"
        what = f"{mode} tiers{meter}: {tiers_summary(price.tiers.all(), currency)}"
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
    rollover = "all unused roll over" if row.rollover_cap is None else (
        "no rollover" if row.rollover_cap == 0 else f"rollover up to {format_decimal(row.rollover_cap)}"
    )
    expiry = "never expire by age" if row.expire_after_periods is None else f"expire after {row.expire_after_periods} period(s)"
    return f"{format_decimal(row.credits)} credits {cadence}; {rollover}; {expiry}; priority {row.priority}"
