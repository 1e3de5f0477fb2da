from datetime import UTC, datetime

import factory
from factory.django import DjangoModelFactory

from metering.models import Event, Meter, MeterFilter


class MeterFactory(DjangoModelFactory):
    class Meta:
        model = Meter

    key = factory.Sequence(lambda n: f"meter-{n}")
    name = factory.Sequence(lambda n: f"Meter {n}")
    event_name = factory.Sequence(lambda n: f"event-{n}")
    aggregation = Meter.Aggregation.COUNT
    field = ""


class MeterFilterFactory(DjangoModelFactory):
    class Meta:
        model = MeterFilter

    meter = factory.SubFactory(MeterFactory)
    property = "model"
    values = factory.LazyFunction(lambda: ["gpt-4o"])


class EventFactory(DjangoModelFactory):
    class Meta:
        model = Event

    customer_external_id = "cust-1"
    event_id = factory.Sequence(lambda n: f"evt-{n}")
    event_name = "api_call"
    timestamp = datetime(2026, 1, 10, tzinfo=UTC)
    properties = factory.LazyFunction(dict)
