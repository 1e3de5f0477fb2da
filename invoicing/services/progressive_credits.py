"""The progressive billing credit of an invoice (DESIGN.md "Commitments and progressive billing"): reads only.

What a period's progressive invoices billed is deducted, before tax, from the next invoice of that period that
bills its usage: a later progressive invoice (which bills the period's usage so far) or the invoice closing
the period (boundary, cancel-now, change), which bills the full period's usage. Rules (docs/billing-rules.md):

* a progressive invoice *billed* ``subtotal - progressive_billing_credit`` (its usage lines less what earlier
  ones billed, before tax); the credit of an invoice is the sum of that over the period's earlier progressive
  invoices that are not void (a voided progressive invoice billed nothing; its threshold stays reached);
* the credit is spread over the invoice's usage lines pro rata (``progressive_math.credit_allocate``); each
  line's ``details`` say how much and which progressive invoices ("why"), and tax is computed on what remains;
* the credit is capped at the usage lines' amount: an invoice never goes below zero
  because of it. Usage only falls within a period with meters that allow negative values or ``latest``;
  the part a cap leaves uncredited is named on the line's details and corrected with a credit note.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from catalog.pricing import currency_exponent, quantize_minor
from core.money import format_money

from ..models import Invoice
from ..progressive_math import credit_allocate
from .lines import LineDraft


def period_progressive_invoices(
    *, subscription_id: int, period_start: datetime, exclude_invoice_id: int | None = None
) -> list[Invoice]:
    """The non-void progressive invoices of the subscription's period starting at ``period_start``, oldest
    first."""
    return list(
        Invoice.objects.filter(
            subscription_id=subscription_id, reason=Invoice.Reason.PROGRESSIVE, period_start=period_start
        )
        .exclude(status=Invoice.Status.VOID)
        .exclude(pk=exclude_invoice_id)
        .order_by("created_at", "id")
    )


def progressive_billed(invoices: list[Invoice]) -> Decimal:
    """What these progressive invoices billed before tax: their usage less the credits they deducted."""
    return sum((inv.subtotal - inv.progressive_billing_credit for inv in invoices), Decimal(0))


def progressive_credit_attach(*, lines: list[LineDraft], invoices: list[Invoice], currency: str) -> Decimal:
    """Spread what ``invoices`` billed over the usage lines of ``lines`` (sets each line's ``credit`` and its
    why in ``details``); returns the credit deducted. Lines of other kinds are untouched."""
    usage = [line for line in lines if line.is_usage]
    billed = quantize_minor(progressive_billed(invoices), currency)
    room = sum((line.amount for line in usage), Decimal(0))
    credit = min(billed, room)
    if credit <= 0 or not usage:
        return Decimal(0)
    minor = Decimal(1).scaleb(-currency_exponent(currency))
    shares = credit_allocate(credit, [line.amount for line in usage], minor)
    numbers = [inv.number or f"draft #{inv.pk}" for inv in invoices]
    for line, share in zip(usage, shares, strict=True):
        line.credit = share
        if not share:
            continue
        why = (
            f"{format_money(share, currency)} of this usage was billed by progressive invoice"
            f"{'s' if len(numbers) > 1 else ''} {', '.join(numbers)}"
        )
        if credit < billed:
            why += f" (credit capped at the usage: {format_money(billed - credit, currency)} not deducted)"
        line.details = {
            **line.details,
            "progressive_billing_credit": f"{share:f}",
            "progressive_invoices": numbers,
            "progressive_billing_explanation": why,
        }
    return credit
