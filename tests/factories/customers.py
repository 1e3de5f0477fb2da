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


# Subscriptions are created through customers.services.subscription_create (or invoicing's
# subscription_start), never by a factory: their periods and version come from the rules.
