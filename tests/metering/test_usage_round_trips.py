"""Round trips of the reads product teams call on every request (docs/metering.md "Round trips of a read"):
an entitlement check is two queries (the entitlements with their meters, filters and watermarks; the usage
statement), a customer's usage of all its meters two, usage of many meters for many customers two. The values
stay those of the rules: every part of a read (rollup, raw edges, raw tail) and each meter's own window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import transaction

from customers.entitlements import customer_usage, entitlement_check, entitlement_list
from customers.services import subscription_row_create
from metering.models import Meter, MeterFilter
from metering.selectors import meter_usage, usage_for_customers
from metering.services import meter_rollup_reset, usage_rollup_refresh
from tests.factories.catalog import EntitlementFactory, FeatureFactory, PlanVersionFactory, PriceFactory
from tests.factories.customers import CustomerFactory
from tests.factories.metering import EventFactory, MeterFactory, MeterFilterFactory

pytestmark = pytest.mark.django_db

START = datetime(2026, 1, 10, tzinfo=UTC)
NOW = datetime(2026, 1, 20, 12, 30, tzinfo=UTC)


def event(customer, at, name="api_call", **props):
    EventFactory(customer_external_id=customer, event_name=name, timestamp=at, properties=props)


@pytest.fixture
def world():
    """acme on a calendar plan from Jan 10: period [Jan 10, Feb 1)."""
    customer = CustomerFactory(external_id="acme")
    version = PlanVersionFactory(published=True)
    tokens = MeterFactory(key="tokens", event_name="api_call", aggregation="sum", field="tokens")
    gpt = MeterFactory(key="gpt-calls", event_name="api_call", aggregation="count")
    MeterFilterFactory(meter=gpt, property="model", values=["gpt-4o"])
    logins = MeterFactory(key="logins", event_name="login", aggregation="count")
    for key, meter, extra in (
        ("tokens", tokens, {"limit": Decimal(100), "reset": "billing_period"}),
        ("gpt-calls", gpt, {"limit": Decimal(3), "reset": "day"}),
    ):
        feature = FeatureFactory(key=key, type="metered", meter=meter)
        EntitlementFactory(plan_version=version, feature=feature, **extra)
    EntitlementFactory(plan_version=version, feature=FeatureFactory(key="sso", type="boolean"))
    PriceFactory(plan_version=version, per_unit=True, meter=logins)
    with transaction.atomic():
        subscription_row_create(customer=customer, plan=version.plan, start_at=START)
    # Folded into the rollup (the refresh below): tokens 10 + 20 on Jan 12, one gpt-4o call on Jan 20 10:00.
    event("acme", datetime(2026, 1, 12, 3, tzinfo=UTC), tokens=10, model="gpt-4o")
    event("acme", datetime(2026, 1, 12, 4, tzinfo=UTC), tokens=20, model="o1")
    event("acme", datetime(2026, 1, 20, 10, tzinfo=UTC), tokens=1, model="gpt-4o")
    usage_rollup_refresh(now=NOW, lag=timedelta(0))
    # After the refresh (the raw tail): 5 tokens with gpt-4o today, 7 tokens with o1 on Jan 15, one before
    # the period (Jan 9) and one login.
    event("acme", datetime(2026, 1, 20, 11, 15, tzinfo=UTC), tokens=5, model="gpt-4o")
    event("acme", datetime(2026, 1, 15, tzinfo=UTC), tokens=7, model="o1")
    event("acme", datetime(2026, 1, 9, tzinfo=UTC), tokens=1000, model="gpt-4o")
    event("acme", datetime(2026, 1, 16, tzinfo=UTC), name="login")
    return customer, tokens, gpt, logins


def test_an_entitlement_check_is_two_queries(world, django_assert_num_queries):
    customer, *_ = world
    with django_assert_num_queries(2):
        state = entitlement_check(customer=customer, feature_key="tokens", now=NOW)
    # billing period [Jan 10, Feb 1): 10 + 20 + 1 (rollup) + 5 + 7 (tail) = 43; Jan 9's 1000 is outside
    assert (state.usage, state.remaining, state.allowed) == (Decimal(43), Decimal(57), True)
    with django_assert_num_queries(2):
        state = entitlement_check(customer=customer, feature_key="gpt-calls", now=NOW)
    # day window [Jan 20, Jan 21) and model gpt-4o only: the 10:00 call (rollup) and the 11:15 one (tail) = 2
    assert (state.usage, state.remaining, state.allowed) == (Decimal(2), Decimal(1), True)
    assert (state.window_start, state.window_end) == (
        datetime(2026, 1, 20, tzinfo=UTC),
        datetime(2026, 1, 21, tzinfo=UTC),
    )
    with django_assert_num_queries(1):  # a boolean feature needs no usage
        assert entitlement_check(customer=customer, feature_key="sso", now=NOW).allowed is True
    with django_assert_num_queries(1):
        assert entitlement_check(customer=customer, feature_key="nope", now=NOW) is None


def test_the_entitlement_list_reads_every_window_in_one_statement(world, django_assert_num_queries):
    customer, *_ = world
    with django_assert_num_queries(2):
        states = {s.feature: s for s in entitlement_list(customer=customer, now=NOW)}
    assert sorted(states) == ["gpt-calls", "sso", "tokens"]
    assert states["tokens"].usage == Decimal(43)  # as in the check above, its billing-period window
    assert states["gpt-calls"].usage == Decimal(2)  # its day window and filter
    assert states["sso"].usage is None


def test_customer_usage_of_all_meters_is_two_queries(world, django_assert_num_queries):
    customer, tokens, gpt, logins = world
    with django_assert_num_queries(2):
        rows = customer_usage(customer=customer, start=START, end=datetime(2026, 2, 1, tzinfo=UTC))
    # gpt-calls: Jan 12 03:00, Jan 20 10:00, 11:15 = 3 (Jan 9 is outside); tokens 43; logins 1
    assert [(m.key, v) for m, v in rows] == [("gpt-calls", Decimal(3)), ("logins", Decimal(1)), ("tokens", Decimal(43))]


def test_usage_of_many_meters_and_customers_is_two_queries(world, django_assert_num_queries):
    _, tokens, gpt, logins = world
    event("other", datetime(2026, 1, 11, tzinfo=UTC), tokens=4, model="gpt-4o")
    meters = list(Meter.objects.filter(key__in=["tokens", "gpt-calls", "logins"]))
    window = {"start": START, "end": datetime(2026, 2, 1, tzinfo=UTC)}
    with django_assert_num_queries(2):
        values = usage_for_customers(meters=meters, customer_external_ids=["acme", "other", "nobody"], **window)
    # acme as above; other: one gpt-4o call with 4 tokens; nobody and other's logins: absent
    assert values == {
        ("acme", tokens.id): Decimal(43),
        ("acme", gpt.id): Decimal(3),
        ("acme", logins.id): Decimal(1),
        ("other", tokens.id): Decimal(4),
        ("other", gpt.id): Decimal(1),
    }
    for (customer, meter_id), value in values.items():  # each the same as read alone
        meter = next(m for m in meters if m.id == meter_id)
        assert meter_usage(meter=meter, customer_external_id=customer, **window) == value


def test_a_meter_object_read_again_sees_its_edited_filters(world):
    _, _, gpt, _ = world
    window = {"customer_external_id": "acme", "start": START, "end": datetime(2026, 2, 1, tzinfo=UTC)}
    assert meter_usage(meter=gpt, **window) == Decimal(3)  # gpt-4o calls
    with transaction.atomic():  # as the admin saves an edited definition: its rollup is rebuilt from events
        MeterFilter.objects.filter(meter=gpt).update(values=["o1"])
        meter_rollup_reset(meter=gpt)
    assert meter_usage(meter=gpt, **window) == Decimal(2)  # the same object: now the two o1 calls
