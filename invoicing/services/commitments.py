"""Minimum commitment true-up (DESIGN.md "Commitments and progressive billing"): reads only, no writes.

At a period's end the invoice closing it (boundary, or the part period of a cancel-now or a plan change) gets a
``commitment`` line when the period's charges are below the version's ``minimum_commitment``:

* **the commitment** is the version's, prorated by whole days exactly as a fixed fee of that amount would be
  for the period (``customers.periods.prorate_period``: a partial first calendar period, a part period ended
  at once), then rounded half-up to the minor unit (the figure the "why" shows);
* **the period's charges** are its fixed fees and its usage lines, before discounts and tax: the lines of the
  closing invoice whose period is the closed one (in-arrears fees, usage) plus the in-advance fixed fees billed
  earlier for that period (the start or previous boundary invoice, and a trial end's invoice for the rest of the
  period; void invoices do not count). For a part
  period ended at once, an in-advance fee billed for the whole period counts for the part's share of its days
  (``fee x part days / fee period days``, half-up, at least one day), the share such a change or cancellation
  leaves charged;
* **the true-up** is ``commitment - charges`` when positive, else no line. Its ``details`` carry the why in
  words ("commitment 10,000.00 x 2/29 = 689.66; charges 16.90; true-up 672.76") and in figures.

The version is the one that billed the period. Coupons (a discount) and tax apply to the true-up like any line;
a progressive billing credit does not (it deducts what progressive invoices billed of the usage).
"""

from __future__ import annotations

from decimal import Decimal

from catalog.models import PlanVersion
from catalog.pricing import prorate, quantize_minor
from customers.models import Subscription
from customers.periods import Period
from customers.schedule import subscription_prorate

from ..models import Invoice, InvoiceLine
from .lines import LineDraft, period_label

#: Line kinds that are a period's charges (fixed fees, prorated or not, and usage).
CHARGE_KINDS = (InvoiceLine.Kind.FIXED, InvoiceLine.Kind.PRORATION, InvoiceLine.Kind.USAGE)
FEE_KINDS = (InvoiceLine.Kind.FIXED, InvoiceLine.Kind.PRORATION)


def _money(value: Decimal, currency: str) -> str:
    return f"{quantize_minor(value, currency):,f}"


def _advance_fees_billed(
    *, subscription: Subscription, period: Period, currency: str, exclude_invoice_id: int | None
) -> Decimal:
    """In-advance fixed fees billed earlier for ``period`` (lines starting at its start on the subscription's
    non-void invoices), the part's share of a fee billed for a longer period."""
    rows = (
        InvoiceLine.objects.filter(
            invoice__subscription_id=subscription.pk,
            kind__in=FEE_KINDS,
            # Starting at the period's start, or inside it: the fees a trial's end bills for the rest of it.
            period_start__gte=period.start,
            period_start__lt=period.end,
            price__timing="in_advance",
        )
        .exclude(invoice__status=Invoice.Status.VOID)
        .exclude(invoice_id=exclude_invoice_id)
        .values_list("amount", "period_start", "period_end")
    )
    return sum(
        (advance_fee_share(amount, Period(start, end), period, currency) for amount, start, end in rows), Decimal(0)
    )


def advance_fee_share(amount: Decimal, billed: Period, period: Period, currency: str) -> Decimal:
    """What an in-advance fee of ``amount`` billed for ``billed`` counts in the closed ``period``'s charges: all
    of it, or for a part period ended at once the part's share of its days (half-up, at least one day)."""
    if billed.end <= period.end or billed.days <= period.days:
        return amount
    return quantize_minor(prorate(amount, max(period.days, 1), billed.days), currency)


def commitment_line_for(
    *,
    subscription: Subscription,
    period: Period,
    version: PlanVersion,
    lines: list[LineDraft],
    currency: str,
    exclude_invoice_id: int | None = None,
) -> LineDraft | None:
    """The ``commitment`` true-up line for the closed ``period`` billed with ``version``, or ``None`` (no
    commitment, or charges at or above it). ``lines``: the closing invoice's lines (those of ``period`` count);
    ``exclude_invoice_id``: the invoice being rebuilt (its stored lines are ``lines``)."""
    if not version.minimum_commitment:
        return None
    own = sum(
        (
            line.amount
            for line in lines
            if line.kind in CHARGE_KINDS and (line.period_start, line.period_end) == (period.start, period.end)
        ),
        Decimal(0),
    )
    charges = own + _advance_fees_billed(
        subscription=subscription, period=period, currency=currency, exclude_invoice_id=exclude_invoice_id
    )
    return commitment_true_up(
        subscription=subscription, period=period, version=version, charges=charges, currency=currency
    )


def commitment_true_up(
    *, subscription: Subscription, period: Period, version: PlanVersion, charges: Decimal, currency: str
) -> LineDraft | None:
    """The ``commitment`` line for the closed ``period`` whose charges (fixed fees and usage, before discounts
    and tax) come to ``charges``, or ``None``. Reads nothing: the backtest calls it with simulated charges."""
    commitment = version.minimum_commitment
    if not commitment:
        return None
    proration = subscription_prorate(subscription, period, Decimal(commitment))
    due = quantize_minor(proration.amount, currency)
    charges = quantize_minor(charges, currency)
    true_up = due - charges
    if true_up <= 0:
        return None
    commitment_text = _money(Decimal(commitment), currency)
    if proration.days != proration.days_in_period:
        commitment_text += f" x {proration.days}/{proration.days_in_period} = {_money(due, currency)}"
    why = f"commitment {commitment_text}; charges {_money(charges, currency)}; true-up {_money(true_up, currency)}"
    label = period_label(period.start, period.end)
    return LineDraft(
        kind=InvoiceLine.Kind.COMMITMENT,
        description=f"Minimum commitment true-up — {label}",
        amount=true_up,
        quantity=Decimal(1),
        plan_version=version,
        period_start=period.start,
        period_end=period.end,
        details={
            "explanation": why,
            "plan": subscription.plan.key,
            "plan_version": version.number,
            "minimum_commitment": f"{Decimal(commitment):f}",
            "days": proration.days,
            "days_in_period": proration.days_in_period,
            "commitment_for_period": f"{due:f}",
            "charges": f"{charges:f}",
            "true_up": f"{true_up:f}",
            "period_start": period.start.isoformat(),
            "period_end": period.end.isoformat(),
            "period": label,
        },
    )
