"""Building invoice lines from a subscription's prices, meters and periods (reads only, no writes).

The same code builds boundary invoices, the start invoice, recalculated drafts and the upcoming-invoice
preview, so a preview always shows what the invoice will say: :func:`boundary_lines_for` (the invoice at a
period's end) and :func:`boundary_lines` (a stored subscription invoice rebuilt by its reason) are here, below
the services that write invoices and run boundaries.

Rules (DESIGN.md "Catalog", "Customers and subscriptions", "Invoicing"):

* A fixed fee (a price without a meter) with timing ``in_advance`` is billed at the start of its period;
  a fixed fee ``in_arrears`` and every usage price (a price with a meter) are billed at its end.
  Rule chosen here: a usage price marked ``in_advance`` cannot know its usage yet, so it is billed in
  arrears too.
* Fixed fees are prorated over a partial period by whole UTC days (``customers.periods.prorate_period``,
  with its 1-day minimum), as line kind ``proration``; usage prices, tier bounds and tier flat amounts never are.
* Each line is rounded half-up to the currency's minor unit once (``quantize_minor``); ``details`` keep
  the unrounded amount, the tier breakdown, the plan version, the meter and the period.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from catalog.models import PlanVersion, Price
from catalog.overrides import Overrides, override_line_unit_amount, price_quote_overridden
from catalog.pricing import quantize_minor
from catalog.quote import price_included_units
from core.money import format_decimal
from customers import periods
from customers.models import Subscription
from customers.periods import Period
from customers.schedule import subscription_period_after, subscription_prorate, subscription_timezone
from customers.selectors import subscription_version_for
from metering.models import Meter
from metering.selectors import usage_for_customers

from ..models import Invoice, InvoiceLine
from ..totals import LineAmount, Totals, totals_compute
from .context import NO_SHEETS, PriceSheets, TaxRates, UsageBatch, version_prices
from .migration import version_pinned_before_migration


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
    #: Its share of the coupons' discount (``services.coupons.invoice_discounts_plan`` sets it), before tax.
    discount: Decimal = Decimal(0)
    #: This line's share of the invoice's progressive billing credit, deducted before tax
    #: (``progressive_credits.progressive_credit_attach``).
    credit: Decimal = Decimal(0)

    @property
    def is_usage(self) -> bool:
        return self.kind == InvoiceLine.Kind.USAGE


def period_label(start: datetime, end: datetime, timezone: str | None = None) -> str:
    """Human period: ``Jan 1–31 2026``, ``Jan 31 – Feb 28 2026``, ``Dec 15 2025 – Jan 14 2026``.

    Periods are half-open; a period ending at midnight shows the day before its end as its last day. Days are
    those of ``timezone`` (the customer's; UTC by default): ``[2023-02-08 00:00 UTC, 2023-03-01 08:00 UTC)`` in
    America/Los_Angeles is ``Feb 7–28 2023``.
    """
    if timezone and timezone != "UTC":
        zone = periods.zone(timezone)
        start, end = start.astimezone(zone), end.astimezone(zone)
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


def period_label_of(obj, empty: str = "", timezone: str | None = None) -> str:
    """:func:`period_label` of an invoice or a line (``period_start``/``period_end``); ``empty`` without a period."""
    if obj.period_start and obj.period_end:
        return period_label(obj.period_start, obj.period_end, timezone)
    return empty


def _base_details(price: Price, version: PlanVersion, period: Period, timezone: str | None = None) -> dict[str, Any]:
    return {
        "price": price.name,
        "price_model": price.model,
        "timing": price.timing,
        "plan": price.plan_version.plan.key,
        "plan_version": version.number,
        "period_start": period.start.isoformat(),
        "period_end": period.end.isoformat(),
        "period": period_label(period.start, period.end, timezone),
    }


def fixed_fee_line(
    *,
    subscription: Subscription,
    price: Price,
    version: PlanVersion,
    period: Period,
    currency: str,
    overrides: Overrides | None = None,
) -> LineDraft:
    """One fixed fee for ``period`` (prorated by whole local days when the period is partial).

    ``overrides``: the subscription's negotiated prices for this period (default: those in force)."""
    overrides = subscription.price_overrides if overrides is None else overrides
    result, override = price_quote_overridden(price, Decimal(1), overrides)
    zone = subscription_timezone(subscription)
    details = {**result.to_details(), **_base_details(price, version, period, zone)}
    if override:
        details["override"] = override
    label = period_label(period.start, period.end, zone)
    proration = subscription_prorate(subscription, period, result.amount)
    kind = InvoiceLine.Kind.FIXED
    exact = proration.amount
    description = f"{price.name} — {label}"
    if proration.partial:
        days_part, days_full = proration.days, proration.days_in_period
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
        kind=kind,
        description=description,
        amount=quantize_minor(exact, currency),
        quantity=Decimal(1),
        unit_amount=None,
        price=price,
        plan_version=version,
        meter=None,
        period_start=period.start,
        period_end=period.end,
        details=details,
    )


def usage_line(
    *,
    price: Price,
    version: PlanVersion,
    period: Period,
    quantity: Decimal,
    currency: str,
    overrides: Overrides | None = None,
    timezone: str | None = None,
) -> LineDraft:
    """One usage price for ``period`` at the metered ``quantity`` (never prorated), with a subscription's
    negotiated prices (``overrides``) when given; its period in the days of ``timezone`` (the customer's)."""
    result, override = price_quote_overridden(price, quantity, overrides)
    meter = price.meter
    details = {**result.to_details(), **_base_details(price, version, period, timezone)}
    if override:
        details["override"] = override
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
    description = f"{price.name} — {text}, {period_label(period.start, period.end, timezone)}"
    return LineDraft(
        kind=InvoiceLine.Kind.USAGE,
        description=description[:500],
        amount=quantize_minor(result.amount, currency),
        quantity=quantity,
        unit_amount=override_line_unit_amount(price, overrides),
        price=price,
        plan_version=version,
        meter=meter,
        period_start=period.start,
        period_end=period.end,
        details=details,
    )


def _in_advance(price: Price) -> bool:
    return price.meter_id is None and price.timing == Price.Timing.IN_ADVANCE


def advance_lines(
    *,
    subscription: Subscription,
    version: PlanVersion,
    period: Period,
    currency: str,
    sheets: PriceSheets = NO_SHEETS,
    overrides: Overrides | None = None,
) -> list[LineDraft]:
    """The period's in-advance fixed fees, priced with ``version`` (the version in effect for that period).

    ``sheets``: price sheets read beforehand (a run's batch); a version they do not hold is read now.
    ``overrides``: the negotiated prices for that period (default: those in force on the subscription)."""
    return [
        fixed_fee_line(
            subscription=subscription, price=p, version=version, period=period, currency=currency, overrides=overrides
        )
        for p in version_prices(version, sheets)
        if _in_advance(p)
    ]


def arrears_lines(
    *,
    subscription: Subscription,
    version: PlanVersion,
    period: Period,
    currency: str,
    usage: UsageBatch | None = None,
    sheets: PriceSheets = NO_SHEETS,
) -> list[LineDraft]:
    """The ended period's in-arrears lines: usage from the meters (aggregated in SQL), fixed fees in arrears.

    ``usage`` may carry values aggregated beforehand (batch runs), used when they were aggregated for this
    period and version; otherwise the meters are queried for this customer and period. ``sheets``: as for
    :func:`advance_lines`.
    """
    prices = [p for p in version_prices(version, sheets) if not _in_advance(p)]
    meters = {p.meter_id: p.meter for p in prices if p.meter_id is not None}
    external_id = subscription.customer.external_id
    values = usage.for_period(period.start, period.end, version.pk) if usage is not None else None
    if values is None and meters:
        values = usage_for_customers(
            meters=list(meters.values()), customer_external_ids=[external_id], start=period.start, end=period.end
        )
    lines: list[LineDraft] = []
    overrides = subscription.price_overrides
    paid_part = after_trial(subscription, period)
    for price in prices:
        if price.meter_id is None:
            if paid_part is None:
                continue  # all of the period is trial days: no fixed fee (DESIGN.md "Trials")
            lines.append(
                fixed_fee_line(
                    subscription=subscription, price=price, version=version, period=paid_part, currency=currency
                )
            )
        else:
            quantity = (values or {}).get((external_id, price.meter_id), Decimal(0))
            lines.append(
                usage_line(
                    price=price,
                    version=version,
                    period=period,
                    quantity=quantity,
                    currency=currency,
                    overrides=overrides,
                    timezone=subscription_timezone(subscription),
                )
            )
    return lines


def after_trial(subscription: Subscription, period: Period) -> Period | None:
    """The part of ``period`` after the subscription's free trial (fixed fees are charged for it only): the period
    itself without a trial, ``None`` when all of it is trial days (DESIGN.md "Trials")."""
    end = subscription.trial_end
    if end is None or end <= period.start:
        return period
    if end >= period.end:
        return None
    return Period(end, period.end)


def version_for_period(subscription: Subscription, period: Period) -> PlanVersion:
    """The version billing ``period``: pinned, else in effect at its start; the current one if none is.

    A pinned subscription moved to another version by a migration keeps, for periods that started before the move
    took effect, the version it was pinned to then (a draft recalculated later bills as it did)."""
    if subscription.pinned_version_id:
        before = version_pinned_before_migration(subscription=subscription, period_start=period.start)
        if before is not None:
            return before
    return subscription_version_for(subscription=subscription, period_start=period.start) or subscription.plan_version


def boundary_lines_for(
    *,
    subscription: Subscription,
    ended: Period,
    ended_version: PlanVersion,
    ending: bool,
    usage: UsageBatch | None = None,
    new_version: PlanVersion | None = None,
    sheets: PriceSheets = NO_SHEETS,
) -> list[LineDraft]:
    """Lines of the invoice at ``ended.end``: ended period's arrears + (unless ending) next period's advance fees.

    ``new_version``: the version for the next period when the caller already resolved it. ``usage`` and
    ``sheets``: what a run read beforehand (``arrears_lines``, ``advance_lines``); else read now.
    """
    currency = subscription.customer.currency
    lines = arrears_lines(
        subscription=subscription, version=ended_version, period=ended, currency=currency, usage=usage, sheets=sheets
    )
    if not ending:
        new_period = subscription_period_after(subscription, ended.end)
        if subscription.in_trial_at(new_period.start):
            return lines  # the trial's end bills the new period's fees from then (``trials.py``)
        pending = subscription.pending_price_overrides  # a PATCH of the overrides applies from the next period
        lines += advance_lines(
            subscription=subscription,
            version=new_version or version_for_period(subscription, new_period),
            period=new_period,
            currency=currency,
            sheets=sheets,
            overrides=pending,
        )
    return lines


#: The reasons of the invoices rebuilt from a subscription's prices and events on recalculation.
REBUILT_REASONS = (Invoice.Reason.START, Invoice.Reason.BOUNDARY, Invoice.Reason.CANCEL)


def boundary_lines(*, subscription: Subscription, invoice: Invoice) -> list[LineDraft]:
    """Rebuild the lines of a stored subscription invoice from events (draft recalculation), by its reason.

    ``start``: the first period's in-advance fees; ``boundary``: the ended period's in-arrears lines and,
    unless the subscription ended at that boundary, the next period's in-advance fees; ``cancel``: the
    in-arrears lines of the part period that ended at once.
    """
    period = Period(invoice.period_start, invoice.period_end)
    currency = invoice.currency
    version = version_for_period(subscription, period)
    if invoice.reason == Invoice.Reason.START:
        return advance_lines(subscription=subscription, version=version, period=period, currency=currency)
    if invoice.reason == Invoice.Reason.CANCEL:
        return arrears_lines(subscription=subscription, version=version, period=period, currency=currency)
    if invoice.reason != Invoice.Reason.BOUNDARY:
        raise ValueError(f"a {invoice.reason} invoice is not rebuilt from its subscription's periods")
    ended_at = subscription.ended_at
    ending = ended_at is not None and ended_at <= invoice.billing_boundary_at
    return boundary_lines_for(subscription=subscription, ended=period, ended_version=version, ending=ending)


def lines_totals(lines: list[LineDraft], *, tax_rates: TaxRates, currency: str) -> Totals:
    """Subtotal, discount (the lines' ``discount`` shares), progressive billing credit (the lines' ``credit``),
    tax once per rate on what remains (``tax_rates``: the customer's, :func:`~.context.tax_rates_of`), total;
    stores each line's tax share on ``line.tax``.

    The discount comes first (DESIGN.md's order): a line's progressive billing credit is cut to what its
    discount leaves (``amount - discount``), and its details say so."""
    for line in lines:
        room = max(line.amount - line.discount, Decimal(0))
        if line.credit > room:
            line.details = {**line.details, "progressive_billing_credit": f"{room:f}", "progressive_credit_cut": True}
            line.credit = room
    totals = totals_compute(
        [
            LineAmount(key=i, amount=line.amount, tax_rates=tax_rates, discount=line.discount, credit=line.credit)
            for i, line in enumerate(lines)
        ],
        currency,
    )
    for i, line in enumerate(lines):
        line.tax = totals.line_tax[i]
    return totals


def tax_breakdown(totals: Totals) -> list[dict[str, str]]:
    """JSON form of the per-rate taxes stored on ``Invoice.tax_breakdown``."""
    return [
        {
            "code": t.code,
            "percentage": f"{t.percentage.normalize():f}",
            "taxable": f"{t.taxable:f}",
            "amount": f"{t.amount:f}",
        }
        for t in totals.taxes
    ]
