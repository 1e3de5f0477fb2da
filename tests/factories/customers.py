from decimal import Decimal

import factory
from factory.django import DjangoModelFactory

from customers.models import Customer, TaxRate


class TaxRateFactory(DjangoModelFactory):
    class Meta:
        model = TaxRate
        django_get_or_create = ("code",)

    code = "vat-20"
    name = "VAT 20%"
    percentage = Decimal("20")


class CustomerFactory(DjangoModelFactory):
    class Meta:
        model = Customer

    external_id = factory.Sequence(lambda n: f"cust-{n}")
    name = factory.Sequence(lambda n: f"Customer {n}")
    email = factory.LazyAttribute(lambda o: f"{o.external_id}@example.com")
    currency = "USD"


# Subscriptions are created through invoicing's subscription_start, or as a bare row (no billing) through
# customers.services.subscription_row_create, never by a factory: their periods and version come from the rules.


def subscribe(*, customer=None, plan=None, start_at=None, billing="calendar", pinned_version=None):
    """A subscription made by the rules (customers.services.subscription_row_create), not by a factory.

    Defaults: a new USD customer, a new monthly plan with one published version (effective 2020-01-01),
    calendar billing starting 2026-01-15 00:00 UTC. No period-start work is done (that is invoicing's).
    """
    from datetime import UTC, datetime

    from django.db import transaction

    from customers.services import subscription_row_create

    from .catalog import PlanFactory, PlanVersionFactory

    if plan is None:
        plan = PlanFactory(currency=customer.currency if customer else "USD")
        PlanVersionFactory(plan=plan, number=1, published=True)
    customer = customer or CustomerFactory(currency=plan.currency)
    with transaction.atomic():
        return subscription_row_create(
            customer=customer,
            plan=plan,
            start_at=start_at or datetime(2026, 1, 15, tzinfo=UTC),
            billing=billing,
            pinned_version=pinned_version,
        )
