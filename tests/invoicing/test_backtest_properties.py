"""Backtest invariants, for any fee, unit price and usage (hypothesis, real database):

* the version that billed a period, re-rated on the same usage, finds every row unchanged (the backtest prices
  with the invoicing line builders and reads usage as billing does);
* another version's simulated amount is its fee plus calls x its unit price, each line rounded half-up to cents,
  and totals are the sums of the rows.
"""

from __future__ import annotations

import uuid
from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catalog.services import plan_create, plan_version_create
from invoicing.services import billing_run_execute
from invoicing.services.backtest import plan_version_backtest
from metering.services import meter_create
from tests.factories.customers import CustomerFactory
from tests.factories.invoicing import events_create

from .helpers import start, utc

pytestmark = pytest.mark.django_db

CENT = Decimal("0.01")
money = st.decimals(min_value=0, max_value=500, places=2)
unit = st.decimals(min_value=0, max_value=Decimal("0.05"), places=4)


def _cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fee1=money, rate1=unit, fee2=money, rate2=unit, calls=st.lists(st.integers(0, 300), min_size=1, max_size=3))
def test_backtest_invariants(fee1, rate1, fee2, rate2, calls):
    tag = uuid.uuid4().hex[:8]
    meter_create(key=f"m-{tag}", name="Calls", event_name=f"call_{tag}", aggregation="count")
    plan = plan_create(key=f"p-{tag}", name="P", currency="USD")

    def version(fee, rate, publish):
        prices = [
            {"name": "Fee", "model": "flat_fee", "amount": f"{fee}"},
            {"name": "Calls", "model": "per_unit", "meter": f"m-{tag}", "unit_amount": f"{rate}"},
        ]
        return plan_version_create(plan=plan, prices=prices, publish=publish, effective_from="2020-01-01T00:00:00Z")

    v1 = version(fee1, rate1, True)
    for i, n in enumerate(calls):
        customer = CustomerFactory(external_id=f"c-{tag}-{i}")
        events_create(
            customer_external_id=customer.external_id, event_name=f"call_{tag}", count=n, start=utc(2026, 1, 3)
        )
        start(customer, plan, utc(2026, 1, 1))
    for i in range(len(calls)):
        billing_run_execute(now=utc(2026, 2, 1), customer_external_id=f"c-{tag}-{i}")
    v2 = version(fee2, rate2, False)

    same = plan_version_backtest(version=v1, start=utc(2026, 1, 1), end=utc(2026, 2, 1), now=utc(2026, 3, 1))
    assert same.totals.customers == len(calls) and same.totals.unchanged == len(calls)
    assert [r.actual for r in same.rows] == [_cents(fee1) + _cents(n * rate1) for n in calls]

    other = plan_version_backtest(version=v2, start=utc(2026, 1, 1), end=utc(2026, 2, 1), now=utc(2026, 3, 1))
    assert [r.simulated for r in other.rows] == [_cents(fee2) + _cents(n * rate2) for n in calls]
    assert other.totals.simulated == sum(r.simulated for r in other.rows)
    assert other.totals.delta == other.totals.simulated - other.totals.actual
    assert other.totals.up + other.totals.down + other.totals.unchanged == len(calls)
