"""Building invoice lines from a subscription's prices, meters and periods (reads only, no writes).

The same code builds boundary invoices, the start invoice, recalculated drafts and the upcoming-invoice
preview, so a preview always shows what the invoice will say.

Rules (DESIGN.md "Catalog", "Customers and subscriptions", "Invoicing"):

* A fixed fee (a price without a meter) with timing ``in_advance`` is billed at the start of its period;
  a fixed fee ``in_arrears`` and every usage price (a price with a meter) are billed at its end.
  Rule chosen here: a usage price marked ``in_advance`` cannot know its usage yet, so it is billed in
  arrears too.
* Fixed fees are prorated over a partial period by whole UTC days (``prorate(fee, days_in_part,
  days_in_full)``), as line kind ``proration``; usage prices, tier bounds and tier flat amounts never are.
* Each line is rounded half-up to the currency's minor unit once (``quantize_minor``); ``details`` keep
  the unrounded amount, the tier breakdown, the plan version, the meter and the period.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from billing_project.money import format_decimal
from catalog.models import PlanVersion, Price
from catalog.pricing import prorate, quantize_minor
from catalog.quote import price_included_units, price_line_unit_amount, price_quote
from customers import periods
from customers.models import Customer, Subscription
from customers.periods import Period
from metering.models import Meter
from metering.selectors import usage_for_customers

from ..models import InvoiceLine
from ..totals import LineAmount, Totals, totals_compute


@dataclass
class LineDraft:
    """An invoice line before it is stored (or a preview line that is never stored)."""

    kind: str
    description: str
    amount: Decimal
    quantity: Decimal = Decimal(0)
    unit_amount: Decimal | None = None
    price: Price | None = None
    plan_version: PlanVersion | None = None
    meter: Meter | None = None
    period_start: datetime | None = None
    period_end: datetime | None = None
    details: dict[str, Any] = field(default_factory=dict)
    tax: Decimal = Decimal(0)

    @property
    def is_usage(self) -> bool:
        return self.kind == InvoiceLine.Kind.USAGE


def period_label(start: datetime, end: datetime) -> str:
    """Human period: ``Jan 1–31 2026``, ``Jan 31 – Feb 28 2026``, ``Dec 15 2025 – Jan 14 2026``.

    Periods are half-open; a period ending at midnight shows the day before its end as its last day.
    """
    last = end - timedelta(days=1) if (end.hour, end.minute, end.second, end.microsecond) == (0, 0, 0, 0) else end
    last_day = max(last.date(), start.date())
    first_day = start.date()
    if first_day == last_day:
        return f"{first_day:%b} {first_day.day} {first_day.year}"
    if (first_day.year, first_day.month) == (last_day.year, last_day.month):
        return f"{first_day:%b} {first_day.day}–{last_day.day} {first_day.year}"
    if first_day.year == last_day.year:
        return f"{first_day:%b} {first_day.day} – {last_day:%b} {last_day.day} {first_day.year}"
    return f"{first_day:%b} {first_day.day} {first_day.year} – {last_day:%b} {last_day.day} {last_day.year}"


def period_label_of(obj, empty: str = "") -> str:
    """:func:`period_label` of an invoice or a line (``period_start``/``period_end``); ``empty`` without a period."""
    if obj.period_start and obj.period_end:
        return period_label(obj.period_start, obj.period_end)
    return empty


def _base_details(price: Price, version: PlanVersion, period: Period) -> dict[str, Any]:
    return {
        "price": price.name,
        "price_model": price.model,
        "timing": price.timing,
        "plan": price.plan_version.plan.key,
        "plan_version": version.number,
        "period_start": period.start.isoformat(),
        "period_end": period.end.isoformat(),
        "period": period_label(period.start, period.end),
    }


def proration_for(subscription: Subscription, period: Period) -> tuple[int, int] | None:
    """``(days_in_part, days_in_full)`` when ``period`` is partial, else ``None``.

    Partial: the first calendar period starting off a boundary, or a period cut short by an immediate
    cancellation (its full period is the schedule period it belongs to).
    """
    plan = subscription.plan
    full_schedule = periods.period_containing(subscription.billing, subscription.start_at, plan.interval, period.start)
    full = periods.full_period_for(subscription.billing, subscription.start_at, plan.interval, full_schedule)
    if full == period:
        return None
    part = Period(period.start, min(period.end, full.end))
    days_part, days_full = part.days, full.days
    if days_part == days_full:
        return None
    return max(days_part, 1), days_full


def fixed_fee_line(
    *, subscription: Subscription, price: Price, version: PlanVersion, period: Period, currency: str
) -> LineDraft:
    """One fixed fee for ``period`` (prorated by whole days when the period is partial)."""
    result = price_quote(price, Decimal(1))
    details = {**result.to_details(), **_base_details(price, version, period)}
    label = period_label(period.start, period.end)
    proration = proration_for(subscription, period)
    kind = InvoiceLine.Kind.FIXED
    exact = result.amount
    description = f"{price.name} — {label}"
    if proration is not None:
        days_part, days_full = proration
        exact = prorate(result.amount, days_part, days_full)
        kind = InvoiceLine.Kind.PRORATION
        description = f"{price.name} — {label} ({days_part} of {days_full} days)"
        details["proration"] = {
            "days": days_part,
            "days_in_period": days_full,
            "full_amount": f"{result.amount:f}",
            "text": f"{days_part} of {days_full} days",
        }
        details["explanation"] = f"{result.explanation} × {days_part}/{days_full} days"
    details["unrounded_amount"] = f"{exact:f}"
    return LineDraft(
        kind=kind, description=description, amount=quantize_minor(exact, currency), quantity=Decimal(1),
        unit_amount=None, price=price, plan_version=version, meter=None,
        period_start=period.start, period_end=period.end, details=details,
    )


def usage_line(
    *, price: Price, version: PlanVersion, period: Period, quantity: Decimal, currency: str
) -> LineDraft:
    """One usage price for ``period`` at the metered ``quantity`` (never prorated)."""
    result = price_quote(price, quantity)
    meter = price.meter
    details = {**result.to_details(), **_base_details(price, version, period)}
    details["meter"] = meter.key
    details["meter_name"] = meter.name
    details["aggregation"] = meter.aggregation
    details["quantity"] = f"{quantity:f}"
    details["unrounded_amount"] = f"{result.amount:f}"
    text = f"{format_decimal(quantity)} {'unit' if quantity == 1 else 'units'}"
    included = price_included_units(price)
    if included is not None:
        text += f", {format_decimal(included)} included"
        details["included_units"] = f"{included:f}"
    description = f"{price.name} — {text}, {period_label(period.start, period.end)}"
    return LineDraft(
        kind=InvoiceLine.Kind.USAGE, description=description[:500], amount=quantize_minor(result.amount, currency),
        quantity=quantity, unit_amount=price_line_unit_amount(price),
        price=price, plan_version=version, meter=meter,
        period_start=period.start, period_end=period.end, details=details,
    )


# Prices of published versions, per process: a published version never changes (DESIGN.md), so its
# prices, tiers and meters can be read once per worker instead of once per invoice.
_PUBLISHED_PRICES: dict[int, list[Price]] = {}


def _prices(version: PlanVersion) -> list[Price]:
    cached = _PUBLISHED_PRICES.get(version.pk) if version.is_published else None
    if cached is None:
        cached = list(
            Price.objects.filter(plan_version=version).select_related("meter", "plan_version__plan")
            .prefetch_related("tiers", "meter__filters").order_by("position", "id")
        )
        if version.is_published:
            if len(_PUBLISHED_PRICES) > 1000:
                _PUBLISHED_PRICES.clear()
            _PUBLISHED_PRICES[version.pk] = cached
    return cached


def _in_advance(price: Price) -> bool:
    return price.meter_id is None and price.timing == Price.Timing.IN_ADVANCE


def advance_lines(*, subscription: Subscription, version: PlanVersion, period: Period, currency: str) -> list[LineDraft]:
    """The period's in-advance fixed fees, priced with ``version`` (the version in effect for that period)."""
    return [
        fixed_fee_line(subscription=subscription, price=p, version=version, period=period, currency=currency)
        for p in _prices(version) if _in_advance(p)
    ]


def arrears_lines(
    *,
    subscription: Subscription,
    version: PlanVersion,
    period: Period,
    currency: str,
    usage: dict[tuple[str, int], Decimal] | None = None,
) -> list[LineDraft]:
    """The ended period's in-arrears lines: usage from the meters (aggregated in SQL), fixed fees in arrears.

    ``usage`` may carry pre-aggregated values ``{(customer_external_id, meter_id): quantity}`` (batch runs);
    otherwise the meters are queried for this customer and period.
    """
    prices = [p for p in _prices(version) if not _in_advance(p)]
    meters = {p.meter_id: p.meter for p in prices if p.meter_id is not None}
    external_id = subscription.customer.external_id
    if usage is None and meters:
        usage = usage_for_customers(
            meters=list(meters.values()), customer_external_ids=[external_id], start=period.start, end=period.end
        )
    lines: list[LineDraft] = []
    for price in prices:
        if price.meter_id is None:
            lines.append(fixed_fee_line(subscription=subscription, price=price, version=version, period=period, currency=currency))
        else:
            quantity = (usage or {}).get((external_id, price.meter_id), Decimal(0))
            lines.append(usage_line(price=price, version=version, period=period, quantity=quantity, currency=currency))
    return lines


def tax_rates_of(customer: Customer) -> tuple[tuple[str, Decimal], ...]:
    """The customer's tax rates as ``(code, percentage)``; they apply to every line (DESIGN.md)."""
    cached = getattr(customer, "_invoicing_tax_rates", None)
    if cached is None:
        cached = tuple((r.code, r.percentage) for r in customer.tax_rates.all().order_by("code"))
        customer._invoicing_tax_rates = cached
    return cached


def lines_totals(lines: list[LineDraft], *, customer: Customer, currency: str) -> Totals:
    """Subtotal, tax once per rate, total; stores each line's tax share on ``line.tax``."""
    rates = tax_rates_of(customer)
    totals = totals_compute([LineAmount(key=i, amount=line.amount, tax_rates=rates) for i, line in enumerate(lines)], currency)
    for i, line in enumerate(lines):
        line.tax = totals.line_tax[i]
    return totals


def tax_breakdown(totals: Totals) -> list[dict[str, str]]:
    """JSON form of the per-rate taxes stored on ``Invoice.tax_breakdown``."""
    return [
        {"code": t.code, "percentage": f"{t.percentage.normalize():f}", "taxable": f"{t.taxable:f}", "amount": f"{t.amount:f}"}
        for t in totals.taxes
    ]
