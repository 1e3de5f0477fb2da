"""What an invoice closing a subscription's period adds to its lines: the commitment true-up, then the progressive
billing credit (DESIGN.md "Commitments and progressive billing"; totals order in "Invoicing": lines ->
subtotal -> coupon discount -> progressive billing credit -> tax -> total).

One call for every invoice that closes a period, so they all say the same: the boundary invoice, the part period
of a cancel-now or a plan change, a recalculated draft of those, and the upcoming-invoice preview. Versions
without a commitment or thresholds cost nothing here (no query).
"""

from __future__ import annotations

from catalog.models import PlanVersion
from customers.models import Subscription
from customers.periods import Period

from .commitments import commitment_line_for
from .lines import LineDraft
from .progressive_credits import period_progressive_invoices, progressive_credit_attach


def period_close_terms_apply(
    *,
    lines: list[LineDraft],
    subscription: Subscription,
    period: Period,
    version: PlanVersion,
    currency: str,
    exclude_invoice_id: int | None = None,
) -> list[LineDraft]:
    """``lines`` plus the ``commitment`` true-up line for ``period`` (when below the commitment), with the
    period's progressive billing credit spread over the usage lines. ``version``: the one billing ``period``;
    ``exclude_invoice_id``: the invoice being rebuilt, when a draft is recalculated."""
    true_up = commitment_line_for(
        subscription=subscription,
        period=period,
        version=version,
        lines=lines,
        currency=currency,
        exclude_invoice_id=exclude_invoice_id,
    )
    if true_up is not None:
        lines = [*lines, true_up]
    if version.progressive_thresholds:
        progressive_credit_attach(
            lines=lines,
            invoices=period_progressive_invoices(
                subscription_id=subscription.pk, period_start=period.start, exclude_invoice_id=exclude_invoice_id
            ),
            currency=currency,
        )
    return lines
