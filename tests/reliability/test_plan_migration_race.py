"""Two migrations of the same subscriptions at once (real threads, real row locks): each subscription moves once.

Both requests read the same two candidates pinned to v1; the subscription rows are locked in id order and re-read
after locking, so the second finds them pinned to v3 already and moves nothing: two audit rows in all, not four.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from customers.models import Subscription
from invoicing.models import SubscriptionMigration
from tests.factories.catalog import PlanVersionFactory, PriceFactory
from tests.factories.customers import CustomerFactory
from tests.invoicing.helpers import start

from .conftest import race


@pytest.mark.django_db(transaction=True)
def test_two_migrations_at_once_move_each_subscription_once(keyed_client):
    v1 = PlanVersionFactory(published=True, number=1)
    PriceFactory(plan_version=v1, amount=Decimal("10.00"))
    v3 = PlanVersionFactory(plan=v1.plan, published=True, number=3, effective_from=datetime(2026, 1, 1, tzinfo=UTC))
    PriceFactory(plan_version=v3, amount=Decimal("15.00"))
    subs = [start(CustomerFactory(), v1.plan, datetime(2026, 1, 1, tzinfo=UTC), pinned_version=v1) for _ in range(2)]

    url = f"/api/v1/plans/{v1.plan.key}/versions/3/migrate"
    clients = [keyed_client(), keyed_client()]
    results = race(*(lambda c=c: c.post(url, {"from_versions": [1]}) for c in clients))

    assert [r.status_code for r in results] == [200, 200], [getattr(r, "content", r) for r in results]
    assert sum(r.json()["count"] for r in results) == 2
    assert SubscriptionMigration.objects.count() == 2
    assert set(SubscriptionMigration.objects.values_list("subscription_id", flat=True)) == {s.pk for s in subs}
    assert set(Subscription.objects.values_list("pinned_version__number", flat=True)) == {3}
