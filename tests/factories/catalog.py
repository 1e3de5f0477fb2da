from datetime import UTC, datetime
from decimal import Decimal

import factory
from factory.django import DjangoModelFactory

from catalog.models import Entitlement, Feature, Plan, PlanCreditGrant, PlanVersion, Price, Tier

from .metering import MeterFactory


class PlanFactory(DjangoModelFactory):
    class Meta:
        model = Plan

    key = factory.Sequence(lambda n: f"plan-{n}")
    name = factory.Sequence(lambda n: f"Plan {n}")
    currency = "USD"
    interval = Plan.Interval.MONTH


class PlanVersionFactory(DjangoModelFactory):
    """A plan version; ``published=True`` trait publishes it (effective 2020-01-01 unless given)."""

    class Meta:
        model = PlanVersion

    plan = factory.SubFactory(PlanFactory)
    number = factory.Sequence(lambda n: n + 1)
    status = PlanVersion.Status.DRAFT
    effective_from = datetime(2020, 1, 1, tzinfo=UTC)

    class Params:
        published = factory.Trait(
            status=PlanVersion.Status.PUBLISHED, published_at=factory.SelfAttribute("effective_from")
        )


class FeatureFactory(DjangoModelFactory):
    class Meta:
        model = Feature

    key = factory.Sequence(lambda n: f"feature-{n}")
    name = factory.Sequence(lambda n: f"Feature {n}")
    type = Feature.Type.BOOLEAN

    class Params:
        metered = factory.Trait(type=Feature.Type.METERED, meter=factory.SubFactory(MeterFactory))


class PriceFactory(DjangoModelFactory):
    """A flat fee in advance by default; traits ``per_unit`` (usage, in arrears)."""

    class Meta:
        model = Price

    plan_version = factory.SubFactory(PlanVersionFactory)
    name = "Base fee"
    model = Price.Model.FLAT_FEE
    timing = Price.Timing.IN_ADVANCE
    amount = Decimal("10.00")

    class Params:
        per_unit = factory.Trait(
            name="Usage",
            model=Price.Model.PER_UNIT,
            timing=Price.Timing.IN_ARREARS,
            amount=None,
            unit_amount=Decimal("0.01"),
            meter=factory.SubFactory(MeterFactory),
        )


class TierFactory(DjangoModelFactory):
    class Meta:
        model = Tier

    price = factory.SubFactory(PriceFactory)
    position = factory.Sequence(lambda n: n)
    up_to = None
    unit_amount = Decimal("1")
    flat_amount = Decimal("0")


class EntitlementFactory(DjangoModelFactory):
    class Meta:
        model = Entitlement

    plan_version = factory.SubFactory(PlanVersionFactory)
    feature = factory.SubFactory(FeatureFactory)
    enabled = True


class PlanCreditGrantFactory(DjangoModelFactory):
    class Meta:
        model = PlanCreditGrant

    plan_version = factory.SubFactory(PlanVersionFactory)
    name = "Monthly credits"
    credits = Decimal("100")
    cadence = PlanCreditGrant.Cadence.PER_PERIOD
    rollover_cap = None
    priority = 10
