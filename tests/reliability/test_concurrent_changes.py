"""Two plan changes of one subscription at once, with real threads and real row locks: one wins (200), the other
gets 409, and nothing is billed or credited twice."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from customers.models import Subscription
from invoicing.models import CreditNote, Invoice
from tests.factories.catalog import PlanVersionFactory, PriceFactory
from tests.factories.customers import CustomerFactory
from tests.invoicing.helpers import start

from .conftest import race


def _plan(key: str, amount: str):
    version = PlanVersionFactory(published=True, number=1, plan__key=key)
    PriceFactory(plan_version=version, amount=Decimal(amount))
    return version.plan


@pytest.mark.django_db(transaction=True)
def test_two_changes_at_once_one_wins_the_other_409(keyed_client):
    basic, _pro, _plus = _plan("basic", "30.00"), _plan("pro", "90.00"), _plan("plus", "60.00")
    now = timezone.now()
    sub = start(CustomerFactory(), basic, now - timedelta(days=10), billing="anniversary", now=now)
    url = f"/api/v1/subscriptions/{sub.pk}/change"
    clients = [keyed_client(), keyed_client()]
    results = race(*(lambda c=c, p=p: c.post(url, {"plan": p}) for c, p in zip(clients, ("pro", "plus"), strict=True)))

    assert sorted(r.status_code for r in results) == [200, 409], [getattr(r, "content", r) for r in results]
    winner = next(r for r in results if r.status_code == 200).json()
    # One successor, one change invoice, one proration credit note: the loser wrote nothing.
    assert Subscription.objects.filter(previous_subscription=sub).count() == 1
    assert Subscription.objects.get(previous_subscription=sub).plan.key == winner["subscription"]["plan"]
    assert Invoice.objects.filter(reason=Invoice.Reason.CHANGE).count() == 1
    assert CreditNote.objects.count() == 1
    sub.refresh_from_db()
    assert sub.status == Subscription.Status.ENDED
