"""Invoicing reads: invoice lists, the upcoming-invoice preview, what drafts and unbilled usage will ask of wallets."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.db.models import QuerySet

from customers.models import Customer, Subscription
from customers.periods import Period

from .models import AppliedCoupon, Coupon, Invoice, InvoiceLine
from .services.changes import scheduled_change_lines
from .services.context import tax_rates_of
from .services.coupons import invoice_discounts_plan
from .services.lines import LineDraft, boundary_lines_for, lines_totals, tax_breakdown
from .services.period_close import period_close_terms_apply

ZERO = Decimal("0")


def invoice_list(
    *, customer: str | None = None, subscription: str | None = None, status: str | None = None
) -> QuerySet[Invoice]:
    """Invoices, newest first, filtered by customer external id, subscription id and status."""
    qs = Invoice.objects.select_related("customer", "subscription").prefetch_related(
        "lines__price", "lines__plan_version", "lines__meter", "coupon_discounts__applied_coupon__coupon"
    )
    if customer:
        qs = qs.filter(customer__external_id=customer)
    if subscription:
        qs = qs.filter(subscription_id=subscription)
    if status:
        qs = qs.filter(status=status)
    return qs.order_by("-created_at", "-id")


def invoice_get(*, invoice_id) -> Invoice:
    return invoice_list().get(pk=invoice_id)


@dataclass
class InvoicePreview:
    """An unsaved, invoice-shaped preview (``status`` "preview"); its lines come from the boundary's code."""

    customer: Customer
    currency: str
    subscription: Subscription | None
    period_start: datetime | None
    period_end: datetime | None
    lines: list[LineDraft] = field(default_factory=list)
    subtotal: Decimal = ZERO
    progressive_billing_credit: Decimal = ZERO
    tax: Decimal = ZERO
    total: Decimal = ZERO
    tax_breakdown: list = field(default_factory=list)
    kind: str = Invoice.Kind.SUBSCRIPTION
    discount: Decimal = ZERO
    coupons: list = field(default_factory=list)
    credits_applied: Decimal = ZERO
    amount_paid: Decimal = ZERO
    amount_due: Decimal = ZERO
    id: None = None
    number: None = None
    status: str = "preview"
    kind: str = Invoice.Kind.SUBSCRIPTION
    reason: str | None = None
    issued_at: None = None
    due_at: None = None


def upcoming_invoice_preview(*, customer: Customer, now: datetime) -> InvoicePreview:
    """The invoice(s) the customer would get at the end of the current period(s), computed now, saved nowhere.

    Rule chosen: for each active subscription, the lines of its next boundary invoice as the boundary code
    builds them (the current period's in-arrears lines with usage so far, plus the next period's in-advance
    fees unless it is canceled at period end; with a plan change scheduled for that boundary, the lines the
    change will bill there, ``changes.scheduled_change_lines``); with several subscriptions, their lines are
    combined into one preview (period = earliest start to latest end; ``subscription`` set only when there is
    one), and taxes are computed once per rate over all of them. The customer's active coupons discount the
    lines as they would discount one invoice (nothing is taken from them). Wallet credits are not previewed
    (``credits_applied`` 0). Its ``reason`` is ``boundary`` (``None`` without an active subscription).
    """
    subscriptions = list(
        Subscription.objects.filter(customer=customer, status=Subscription.Status.ACTIVE)
        .select_related("customer", "plan", "plan_version", "plan_version__plan", "pinned_version", "scheduled_plan")
        .order_by("current_period_end", "id")
    )
    lines: list[LineDraft] = []
    for sub in subscriptions:
        sub.customer = customer
        if sub.scheduled_plan_id is not None and not sub.cancel_at_period_end:
            lines += scheduled_change_lines(subscription=sub).lines  # the change's boundary, as it will bill
            continue
        current = Period(sub.current_period_start, sub.current_period_end)
        lines += period_close_terms_apply(
            lines=boundary_lines_for(
                subscription=sub, ended=current, ended_version=sub.plan_version, ending=sub.cancel_at_period_end
            ),
            subscription=sub,
            period=current,
            version=sub.plan_version,
            currency=customer.currency,
        )
    discounts = invoice_discounts_plan(
        invoice=Invoice(customer=customer, currency=customer.currency, kind=Invoice.Kind.SUBSCRIPTION), lines=lines
    )
    totals = lines_totals(lines, tax_rates=tax_rates_of(customer), currency=customer.currency)
    return InvoicePreview(
        customer=customer,
        currency=customer.currency,
        subscription=subscriptions[0] if len(subscriptions) == 1 else None,
        period_start=min((s.current_period_start for s in subscriptions), default=None),
        period_end=max((s.current_period_end for s in subscriptions), default=None),
        lines=lines,
        subtotal=totals.subtotal,
        discount=totals.discount,
        coupons=[
            {"coupon": d.applied.coupon.code, "amount": f"{d.take.amount:f}", "explanation": d.explanation}
            for d in discounts.discounts
        ],
        progressive_billing_credit=totals.progressive_billing_credit,
        tax=totals.tax,
        total=totals.total,
        tax_breakdown=tax_breakdown(totals),
        amount_due=totals.total,
        reason=Invoice.Reason.BOUNDARY if subscriptions else None,
    )


def customer_pending_payable(*, customer: Customer, currency: str, now: datetime) -> tuple[Decimal, Decimal]:
    """Money that unbilled usage of current periods and draft invoices will ask wallets to pay.

    Returns ``(payable_by_all_lines_wallets, payable_by_usage_only_wallets)`` in ``currency``: amounts net of
    credits already held for drafts (the held credits are counted by the wallets selector). Used for a
    wallet's real-time balance.

    Rule (DESIGN.md: "the ledger balance minus what the current period's unbilled usage and any draft
    invoices will consume"): the preview's current-period **usage** lines with their tax shares -- fixed fees
    are not usage, whether in arrears this period or in advance for the next -- plus open drafts'
    ``amount_due``; the usage-only figure is the same usage, and for drafts their usage lines with tax, capped
    at their amount due.
    """
    if currency != customer.currency:
        return ZERO, ZERO
    preview = upcoming_invoice_preview(customer=customer, now=now)
    payable_all = payable_usage = ZERO
    current = {
        (start, end)
        for start, end in Subscription.objects.filter(customer=customer, status=Subscription.Status.ACTIVE).values_list(
            "current_period_start", "current_period_end"
        )
    }
    for line in preview.lines:
        if line.is_usage and (line.period_start, line.period_end) in current:
            # Less its coupon discount and what progressive invoices already billed of it (invoices of their own).
            payable_all += line.amount - line.discount - line.credit + line.tax
            payable_usage += line.amount - line.discount - line.credit + line.tax
    for draft in Invoice.objects.drafts().filter(customer=customer, currency=currency).prefetch_related("lines"):
        payable_all += draft.amount_due
        usage = sum(
            (
                line.amount - line.discount + line.tax
                for line in draft.lines.all()
                if line.kind == InvoiceLine.Kind.USAGE
            ),
            ZERO,
        )
        payable_usage += min(usage, draft.amount_due)
    return payable_all, payable_usage


def coupon_list() -> QuerySet[Coupon]:
    """Coupons by code, with their plans."""
    return Coupon.objects.prefetch_related("plans").order_by("code")


def coupon_get(*, code: str) -> Coupon:
    return coupon_list().get(code=code)


def applied_coupon_list(*, customer: Customer) -> QuerySet[AppliedCoupon]:
    """The customer's applied coupons in the order they were applied (the order they discount in)."""
    return (
        AppliedCoupon.objects.filter(customer=customer)
        .select_related("coupon", "customer")
        .order_by("created_at", "id")
    )


def applied_coupon_remaining_amount(applied: AppliedCoupon) -> Decimal | None:
    """What a fixed coupon may still take: a ``once`` coupon's balance, ``amount x invoices left`` when repeating;
    ``None`` for a percentage or a ``forever`` coupon (no bound), and 0 once it is not active any more."""
    coupon = applied.coupon
    if coupon.kind != Coupon.Kind.FIXED:
        return None
    if applied.status != AppliedCoupon.Status.ACTIVE:
        return applied.remaining_amount if applied.remaining_amount is not None else ZERO
    if applied.remaining_amount is not None:
        return applied.remaining_amount
    if applied.remaining_periods is not None:
        return coupon.amount * applied.remaining_periods
    return None


#: Invoices that close a subscription's period (and deduct its progressive invoices).
PERIOD_CLOSING_REASONS = (Invoice.Reason.BOUNDARY, Invoice.Reason.CANCEL, Invoice.Reason.CHANGE)


def invoice_progressive_links(*, invoice: Invoice) -> tuple[Invoice | None, list[Invoice]]:
    """``(period invoice, progressive invoices)`` linked to ``invoice`` (admin): a progressive invoice's period
    invoice (the one closing its period, once issued) and the period's other progressive invoices; for a period
    invoice, the progressive invoices of its period. ``(None, [])`` for anything else."""
    if invoice.subscription_id is None or invoice.period_start is None:
        return None, []
    same_period = Invoice.objects.filter(subscription_id=invoice.subscription_id, period_start=invoice.period_start)
    progressive = list(
        same_period.filter(reason=Invoice.Reason.PROGRESSIVE).exclude(pk=invoice.pk).order_by("created_at", "id")
    )
    if invoice.reason == Invoice.Reason.PROGRESSIVE:
        closing = same_period.filter(reason__in=PERIOD_CLOSING_REASONS).order_by("created_at", "id").first()
        return closing, progressive
    if invoice.reason in PERIOD_CLOSING_REASONS:
        return None, progressive
    return None, []
