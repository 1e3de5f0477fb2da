"""Properties of a change now, for any instant of a period (hypothesis, on PostgreSQL): the old plan keeps exactly
the days before the change's date, the new plan bills exactly the days from it, and the credit never exceeds what
was charged."""

from __future__ import annotations

import itertools
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from invoicing.services import subscription_change
from tests.factories.catalog import PlanVersionFactory, PriceFactory
from tests.factories.customers import CustomerFactory

from .helpers import invoices_of, start, utc

pytestmark = pytest.mark.django_db

_names = itertools.count()


def _plan(amount: Decimal, interval: str):
    version = PlanVersionFactory(published=True, number=1, plan__interval=interval)
    PriceFactory(plan_version=version, amount=amount)
    return version.plan


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    minutes=st.integers(min_value=0, max_value=31 * 24 * 60 - 1),
    old_fee=st.decimals(min_value=Decimal("1"), max_value=Decimal("5000"), places=2),
    new_fee=st.decimals(min_value=Decimal("1"), max_value=Decimal("5000"), places=2),
    interval=st.sampled_from(["month", "year"]),
    billing=st.sampled_from(["calendar", "anniversary"]),
)
def test_a_change_splits_the_period_by_days(minutes, old_fee, new_fee, interval, billing):
    old_plan, new_plan = _plan(old_fee, "month"), _plan(new_fee, interval)
    customer = CustomerFactory(external_id=f"prop-{next(_names)}")
    s = utc(2026, 3, 1)  # a full month, 31 days, so every instant below is inside it
    sub = start(customer, old_plan, s, billing=billing)
    t = s + timedelta(minutes=minutes)
    outcome = subscription_change(subscription=sub, plan=new_plan, at="now", now=t)
    [charged] = invoices_of(sub)[0].lines.all()
    unused = (utc(2026, 4, 1).date() - t.date()).days  # from the change's date: the day of the change is the new plan's
    # The credit is the old fee's unused days, rounded once, never more than charged.
    expected = (old_fee * unused / 31).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    assert sum(n.amount for n in outcome.credit_notes) == expected <= charged.amount
    # The new plan bills from the change's date to its period's end, as a proration of its own full period.
    [line] = outcome.invoice.lines.all()
    proration = line.details.get("proration")
    days = (line.period_end.date() - t.date()).days
    if proration is not None:
        assert proration["days"] == max(days, 1)
        full = Decimal(proration["days_in_period"])
        assert line.amount == (new_fee * proration["days"] / full).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    else:
        assert line.amount == new_fee  # t at the start of a new period: a whole period
    assert line.period_start == t and line.amount <= new_fee
