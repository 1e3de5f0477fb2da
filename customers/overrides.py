"""What a subscription's negotiated prices (``catalog.overrides``) do, for people: the admin's subscription page
and the customer 360 panel show the same lines."""

from __future__ import annotations

from catalog.overrides import override_status

from .models import Subscription


def subscription_override_lines(subscription: Subscription) -> list[str]:
    """One line per override for the version billing the current period ("Calls: override: unit_amount 0.008
    (plan: 0.01)", or why it is dropped), then the overrides waiting for the next period, if any."""
    prices = list(subscription.plan_version.prices.all())
    lines = [text for _, text in override_status(subscription.price_overrides, prices)]
    pending = subscription.pending_price_overrides
    if pending is not None:
        if not pending:
            lines.append("From the next period: no overrides (the plan's prices).")
        for _, text in override_status(pending, prices):
            lines.append(f"From the next period: {text}")
    return lines
