"""Where invoicing meets wallets: the calls the period boundary and finalization make into wallet services.

Order at a boundary (DESIGN.md, Wallets and credits): the boundary invoice is computed, then
``invoice_credits_apply`` (credits of the ended period pay its charges first; for a draft waiting out its
grace period the credits are held for it now, before rollover and expiry), then ``plan_credits_close_period``
(rollover up to the cap, the rest expires; forfeited when the subscription ends), then the subscription
advances and ``plan_credits_grant`` gives the new period's credits.
"""

from __future__ import annotations

from datetime import datetime

from customers.models import Subscription
from customers.periods import Period

from ..models import Invoice


def plan_credits_grant(*, subscription: Subscription, period: Period, now: datetime) -> None:
    """Grant the period's plan credits (subscription.plan_version's grants) to the customer's wallet. Idempotent."""


def invoice_credits_apply(*, invoice: Invoice, now: datetime) -> None:
    """Apply (or hold, for a draft) wallet credits to the invoice; sets invoice.credits_applied. Idempotent."""


def invoice_credits_release(*, invoice: Invoice, now: datetime) -> None:
    """Give back credits held for a draft (before it is recalculated). Idempotent."""


def plan_credits_close_period(*, subscription: Subscription, period: Period, ending: bool, now: datetime) -> None:
    """At a period's end: carry unused plan credits up to the rollover cap, expire the rest. Idempotent."""


def credits_scheduled_work(*, now: datetime, customer_external_id: str | None = None) -> dict:
    """Run-time wallet work: expire grants past expires_at, low-balance alerts and auto top-ups. Returns counts."""
    return {"grants_expired": 0, "alerts": 0, "top_ups": 0}
