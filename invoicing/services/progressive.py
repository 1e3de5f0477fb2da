"""Progressive billing: the watch and the ``progressive`` invoices it issues (DESIGN.md "Commitments and
progressive billing"; API.md "Commitments and progressive billing").

A subscription whose current version has ``progressive_thresholds`` is watched by every billing run and by a
frequent beat task. Its **lifetime usage amount** is every usage line of every period, before discount and tax:
the usage lines of its earlier periods' invoices (not void; progressive invoices are not counted twice) plus its
current period's usage so far, priced now. When that amount reaches a threshold level not reached before
(``progressive_math``), a ``progressive`` invoice bills the current period's usage so far, less what earlier
progressive invoices of the period billed (its ``progressive_billing_credit``): taxed, finalized per the
customer's grace days and paid by wallet credits like any other invoice. Levels reached together make one
invoice. The period's closing invoice bills the full period and deducts what they billed
(``progressive_credits``).

**Cheap watch** (:func:`progressive_watch`): one pass reads only the subscriptions whose version has thresholds,
in pages of ``WATCH_BATCH``; per page one query for the levels already reached, one for earlier periods' usage
amounts, and per (version, period) group one usage query per meter through ``metering.selectors.
usage_for_customers`` (the hourly rollup plus the raw events of the open hours: never every raw event of the
period). Pricing the usage is done in Python on those values. Only a subscription found at or past its next
level is then locked and evaluated again exactly (:func:`progressive_invoice_issue`).

**Idempotent under parallel runs**: the evaluation that issues an invoice holds the customer's lock (the lock
order's first) and then the subscription's, and re-reads the levels reached after locking, so a second watch
waits and then finds the crossing invoiced. ``invoice_unique_progressive_crossing`` (subscription, first level
crossed) makes a second invoice for one crossing impossible even without the locks: two evaluations starting from
the same state name the same first level.

Rules chosen where the design is silent (docs/billing-rules.md):

* a subscription whose period end has passed is left to the billing run (its boundary bills the period first);
* the watch evaluates at ``now``: usage with timestamps up to ``now`` counts;
* a crossing that would bill nothing (the period's usage so far already billed) issues no invoice and stays
  unrecorded, so the next evaluation sees it again;
* a voided progressive invoice still counts as its threshold reached (a crossing fires once in the
  subscription's life), but not in any credit;
* a plan change starts a new subscription, whose lifetime starts at zero.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.db.models import Max, Sum

from catalog.commitments import thresholds_of
from catalog.models import PlanVersion, Price
from catalog.pricing import quantize_minor
from catalog.quote import price_quote
from customers.models import Customer, Subscription
from customers.periods import Period
from metering.selectors import usage_for_customers

from ..models import Invoice, InvoiceLine
from ..progressive_math import Crossing, crossing_find, level_next
from .context import PriceSheets, price_sheets_read, tax_rates_of, version_prices
from .invoices import invoice_create_for_period, invoice_finalize_number, invoice_finalize_or_hold
from .lines import LineDraft, usage_line
from .progressive_credits import period_progressive_invoices, progressive_credit_attach

WATCH_BATCH = 2000


@dataclass
class WatchOutcome:
    """What one watch pass did: subscriptions evaluated, crossings found, invoices issued (ids), seconds."""

    evaluated: int = 0
    crossings: int = 0
    invoices: list[int] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0


@dataclass(frozen=True)
class ProgressiveState:
    """A subscription's progressive billing position as of an instant (customer 360, the watch)."""

    period: Period
    current_usage: Decimal  # the current period's usage amount so far
    past_usage: Decimal  # earlier periods' usage amounts
    billed_this_period: Decimal  # what progressive invoices billed of the current period (before tax)
    reached: Decimal | None  # the highest level reached before
    next_level: Decimal | None
    lines: tuple[LineDraft, ...] = ()  # the current period's usage lines so far

    @property
    def lifetime_usage(self) -> Decimal:
        return self.past_usage + self.current_usage


def _watched(now: datetime, customer_external_id: str | None = None):
    """Active subscriptions in a current period at ``now`` whose version has thresholds."""
    qs = Subscription.objects.filter(
        status=Subscription.Status.ACTIVE, current_period_start__lte=now, current_period_end__gt=now
    ).exclude(plan_version__progressive_thresholds=[])
    if customer_external_id:
        qs = qs.filter(customer__external_id=customer_external_id)
    return qs


def _reached_levels(subscription_ids: Iterable[int]) -> dict[int, Decimal]:
    rows = (
        Invoice.objects.filter(subscription_id__in=list(subscription_ids), reason=Invoice.Reason.PROGRESSIVE)
        .values("subscription_id")
        .annotate(level=Max("progressive_threshold_reached"))
    )
    return {row["subscription_id"]: row["level"] for row in rows}


def _past_usage(subscription_ids: Iterable[int]) -> dict[int, Decimal]:
    """Earlier periods' usage amounts: usage lines of the subscriptions' non-progressive, non-void invoices (a
    current period has no such invoice before it closes)."""
    rows = (
        InvoiceLine.objects.filter(invoice__subscription_id__in=list(subscription_ids), kind=InvoiceLine.Kind.USAGE)
        .exclude(invoice__reason=Invoice.Reason.PROGRESSIVE)
        .exclude(invoice__status=Invoice.Status.VOID)
        .values("invoice__subscription_id")
        .annotate(amount=Sum("amount"))
    )
    return {row["invoice__subscription_id"]: row["amount"] or Decimal(0) for row in rows}


def _usage_prices(version: PlanVersion, sheets: PriceSheets) -> list[Price]:
    return [p for p in version_prices(version, sheets) if p.meter_id is not None]


def _usage_amount(prices: list[Price], values, external_id: str, currency: str) -> Decimal:
    """The usage lines' amount (each rounded once, as on an invoice) from metered ``values``."""
    return sum(
        (
            quantize_minor(price_quote(price, values.get((external_id, price.meter_id), Decimal(0))).amount, currency)
            for price in prices
        ),
        Decimal(0),
    )


def progressive_watch(*, now: datetime, customer_external_id: str | None = None) -> WatchOutcome:
    """One pass of the watch (module docstring) as of ``now``: find the subscriptions at or past their next
    threshold level cheaply, then issue their progressive invoices (each in its own transaction). A failing
    subscription is recorded on the outcome and the pass goes on."""
    started = time.perf_counter()
    outcome = WatchOutcome()
    ids = list(_watched(now, customer_external_id).order_by("id").values_list("id", flat=True))
    for offset in range(0, len(ids), WATCH_BATCH):
        for subscription_id in _candidates(ids[offset : offset + WATCH_BATCH], now=now, outcome=outcome):
            outcome.crossings += 1
            try:
                invoice = progressive_invoice_issue(subscription_id=subscription_id, now=now)
            except Exception as exc:  # one subscription's failure must not stop the watch
                outcome.failures.append(f"progressive billing of subscription {subscription_id}: {exc}")
                continue
            if invoice is not None:
                outcome.invoices.append(invoice.pk)
    outcome.seconds = time.perf_counter() - started
    return outcome


def _candidates(subscription_ids: list[int], *, now: datetime, outcome: WatchOutcome) -> list[int]:
    """The subscriptions of one page at or past their next level, read without locks."""
    rows = list(
        Subscription.objects.filter(pk__in=subscription_ids).values_list(
            "id", "customer__external_id", "customer__currency", "plan_version_id", "current_period_start"
        )
    )
    versions = {v.pk: v for v in PlanVersion.objects.filter(pk__in={r[3] for r in rows})}
    sheets = price_sheets_read(versions)
    reached = _reached_levels(subscription_ids)
    past = _past_usage(subscription_ids)
    groups: dict[tuple[int, datetime], list[tuple]] = {}
    for row in rows:
        groups.setdefault((row[3], row[4]), []).append(row)
    found: list[int] = []
    for (version_id, start), members in groups.items():
        version = versions[version_id]
        prices = _usage_prices(version, sheets)
        thresholds = [(t.amount, t.recurring) for t in thresholds_of(version.progressive_thresholds)]
        meters = list({p.meter_id: p.meter for p in prices}.values())
        values = usage_for_customers(meters=meters, customer_external_ids=[m[1] for m in members], start=start, end=now)
        for subscription_id, external_id, currency, _v, _s in members:
            outcome.evaluated += 1
            current = _usage_amount(prices, values, external_id, currency)
            lifetime = past.get(subscription_id, Decimal(0)) + current
            if crossing_find(thresholds, reached=reached.get(subscription_id), amount=lifetime) is not None:
                found.append(subscription_id)
    return found


def _period_usage_lines(
    subscription: Subscription, version: PlanVersion, period: Period, now: datetime
) -> list[LineDraft]:
    """The current period's usage lines so far (``[period start, now)``), priced as the closing invoice will."""
    prices = _usage_prices(version, {})
    currency = subscription.customer.currency
    external_id = subscription.customer.external_id
    so_far = Period(period.start, now)
    values = usage_for_customers(
        meters=list({p.meter_id: p.meter for p in prices}.values()),
        customer_external_ids=[external_id],
        start=period.start,
        end=now,
    )
    return [
        usage_line(
            price=price,
            version=version,
            period=so_far,
            quantity=values.get((external_id, price.meter_id), Decimal(0)),
            currency=currency,
        )
        for price in prices
    ]


def progressive_state_read(*, subscription: Subscription, now: datetime) -> ProgressiveState | None:
    """The subscription's progressive position at ``now`` (``None`` without thresholds or outside a current
    period): usage so far, lifetime usage, billed this period, levels reached and next."""
    version = subscription.plan_version
    thresholds = [(t.amount, t.recurring) for t in thresholds_of(version.progressive_thresholds)]
    start, end = subscription.current_period_start, subscription.current_period_end
    if not thresholds or subscription.status != Subscription.Status.ACTIVE or not start <= now < end:
        return None
    period = Period(start, end)
    lines = _period_usage_lines(subscription, version, period, now) if now > start else []
    reached = _reached_levels([subscription.pk]).get(subscription.pk)
    return ProgressiveState(
        period=period,
        current_usage=sum((line.amount for line in lines), Decimal(0)),
        past_usage=_past_usage([subscription.pk]).get(subscription.pk, Decimal(0)),
        billed_this_period=quantize_minor(
            sum(
                (
                    inv.subtotal - inv.progressive_billing_credit
                    for inv in period_progressive_invoices(subscription_id=subscription.pk, period_start=start)
                ),
                Decimal(0),
            ),
            subscription.customer.currency,
        ),
        reached=reached,
        next_level=level_next(thresholds, reached),
        lines=tuple(lines),
    )


def _lock(subscription_id: int) -> Subscription | None:
    """Lock the subscription's customer, then the subscription (the lock order), re-read after locking."""
    customer_id = Subscription.objects.filter(pk=subscription_id).values_list("customer_id", flat=True).first()
    if customer_id is None:
        return None
    Customer.objects.select_for_update().filter(pk=customer_id).first()
    return (
        Subscription.objects.select_for_update(of=("self",))
        .select_related("customer", "plan", "plan_version", "plan_version__plan")
        .filter(pk=subscription_id)
        .first()
    )


@transaction.atomic(durable=True)
def progressive_invoice_issue(*, subscription_id: int, now: datetime) -> Invoice | None:
    """Evaluate one subscription exactly, under its locks, and issue its progressive invoice when its lifetime
    usage amount reaches a level not reached before; ``None`` otherwise (nothing reached, nothing left to bill,
    or a concurrent evaluation invoiced the crossing)."""
    subscription = _lock(subscription_id)
    if subscription is None:
        return None
    state = progressive_state_read(subscription=subscription, now=now)
    if state is None:
        return None
    version = subscription.plan_version
    thresholds = [(t.amount, t.recurring) for t in thresholds_of(version.progressive_thresholds)]
    crossing = crossing_find(thresholds, reached=state.reached, amount=state.lifetime_usage)
    if crossing is None:
        return None
    return _invoice_create(subscription=subscription, version=version, state=state, crossing=crossing, now=now)


def _invoice_create(
    *, subscription: Subscription, version: PlanVersion, state: ProgressiveState, crossing: Crossing, now: datetime
) -> Invoice | None:
    customer = subscription.customer
    lines = list(state.lines)
    earlier = period_progressive_invoices(subscription_id=subscription.pk, period_start=state.period.start)
    credit = progressive_credit_attach(lines=lines, invoices=earlier, currency=customer.currency)
    if sum((line.amount for line in lines), Decimal(0)) - credit <= 0:
        return None
    for line in lines:
        line.details = {
            **line.details,
            "progressive_threshold": f"{crossing.highest:f}",
            "lifetime_usage": f"{state.lifetime_usage:f}",
        }
    invoice = invoice_create_for_period(
        customer=customer,
        subscription=subscription,
        boundary_at=None,
        period=Period(state.period.start, now),
        lines=lines,
        now=now,
        tax_rates=tax_rates_of(customer),
        reason=Invoice.Reason.PROGRESSIVE,
        kind=Invoice.Kind.PROGRESSIVE,
        progressive_crossing=(crossing.first, crossing.highest),
    )
    if invoice is not None and invoice_finalize_or_hold(invoice=invoice, now=now):
        invoice_finalize_number(invoice=invoice, now=now)
    return invoice
