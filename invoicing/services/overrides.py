"""Negotiated prices of a subscription (``catalog.overrides``): the entry point that changes them.

The rules (which values, from when, across versions) are ``catalog.overrides``' and
``customers.services.subscription_row_price_overrides_set``'s; billing applies them in ``lines`` (each line's
``details["override"]``). This is the lifecycle's entry point, so a change takes the same locks, in the same order,
as a period boundary that reads them: the customer first, then the subscription.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from customers.models import Customer, Subscription
from customers.services import subscription_row_price_overrides_set


@transaction.atomic(durable=True)
def subscription_price_overrides_update(*, subscription: Subscription, price_overrides: Any) -> Subscription:
    """Replace the subscription's price overrides from its next period on (``PATCH /subscriptions/{id}``).

    ``400`` naming the field for an unknown price, fields of another model or a bad value; ``409`` when the
    subscription has ended. The period being served keeps the overrides in force.
    """
    Customer.objects.select_for_update().get(pk=subscription.customer_id)
    return subscription_row_price_overrides_set(subscription=subscription, price_overrides=price_overrides)
