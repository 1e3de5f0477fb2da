"""Trial ends (DESIGN.md "Trials"): the invoice for the rest of the period once a free trial is over.

A subscription's trial ends ``trial_days`` days after its start (same time of day; ``Subscription.trial_end``).
During the trial no fixed fee is charged for trial days (the start creates no invoice, a boundary inside the
trial bills no in-advance fees, in-arrears fixed fees count only non-trial days: ``lines.py``); usage is billed as
usual; plan credits and entitlements apply.

The billing run at or after ``trial_end`` issues one invoice (reason ``trial_end``, boundary ``trial_end``) with
the in-advance fixed fees from the trial end's date to the period's end, prorated by whole days. Rules chosen:

* A trial ending exactly on a period boundary has nothing of its own to bill: that boundary's invoice carries the
  new period's fees as usual.
* When a run catches up past several boundaries, the trial end is billed before the boundary that ends its period
  (``boundary.py`` calls :func:`trial_end_bill_locked` first), so each invoice keeps its period.
* The invoice is unique per (subscription, trial end) like every boundary: a second run bills nothing.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.db.models import Exists, F, OuterRef

from customers.models import Subscription
from customers.periods import Period

from ..models import Invoice
from .context import tax_rates_of
from .invoices import invoice_create_for_period, invoice_finalize_number, invoice_finalize_or_hold
from .lifecycle import _lock_customer, _lock_subscription
from .lines import advance_lines


def trial_end_bill_locked(*, subscription: Subscription, now: datetime) -> Invoice | None:
    """Bill the locked subscription's trial end when it is due and falls inside its current period. Call inside a
    transaction holding the customer and subscription locks. ``None`` when nothing is due or it was billed."""
    end = subscription.trial_end
    if (
        end is None
        or end > now
        or subscription.status != Subscription.Status.ACTIVE
        or not subscription.current_period_start < end < subscription.current_period_end
    ):
        return None
    if Invoice.objects.filter(subscription=subscription, billing_boundary_at=end).exists():
        return None
    part = Period(end, subscription.current_period_end)
    customer = subscription.customer
    lines = advance_lines(
        subscription=subscription, version=subscription.plan_version, period=part, currency=customer.currency
    )
    for line in lines:
        line.details["trial"] = {"trial_end": end.isoformat(), "why": "Fees from the trial's end to the period's end"}
    invoice = invoice_create_for_period(
        customer=customer,
        subscription=subscription,
        boundary_at=end,
        period=part,
        lines=lines,
        now=now,
        tax_rates=tax_rates_of(customer),
        reason=Invoice.Reason.TRIAL_END,
    )
    if invoice is not None and invoice_finalize_or_hold(invoice=invoice, now=now):
        invoice_finalize_number(invoice=invoice, now=now)
    return invoice


def trial_end_due_ids(*, now: datetime, customer_external_id: str | None = None) -> list[int]:
    """Active subscriptions whose trial ended at or before ``now`` inside their current period, not billed yet."""
    billed = Invoice.objects.filter(subscription=OuterRef("pk"), billing_boundary_at=OuterRef("trial_end"))
    qs = Subscription.objects.filter(
        status=Subscription.Status.ACTIVE,
        trial_end__lte=now,
        trial_end__gt=F("current_period_start"),
        trial_end__lt=F("current_period_end"),
    ).filter(~Exists(billed))
    if customer_external_id:
        qs = qs.filter(customer__external_id=customer_external_id)
    return list(qs.order_by("trial_end", "id").values_list("id", flat=True))


@transaction.atomic(durable=True)
def subscription_trial_end_bill(*, subscription_id: int, now: datetime) -> Invoice | None:
    """One subscription's trial end in its own transaction (the billing run's step; idempotent)."""
    customer_id = Subscription.objects.values_list("customer_id", flat=True).get(pk=subscription_id)
    _lock_customer(customer_id)
    return trial_end_bill_locked(subscription=_lock_subscription(subscription_id), now=now)
