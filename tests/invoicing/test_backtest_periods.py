"""The backtest compares whole periods as they were billed (docs/pricing-operations.md "What a backtest compares"):
minimum commitments (the invoiced true-up against the simulated version's), free trials (the fees a trial end
billed for the rest of the period), periods closed by a plan change (at the period's end, or at once: the old
plan's part period, its in-advance fees less what the change credited), and per-subscription price overrides.

Every example backtests the version that billed the periods too: re-rated on its own usage, every row must come
out unchanged, which checks that both sides count the same lines.
"""

from __future__ import annotations

import uuid
from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catalog.services import plan_create, plan_version_create
from customers.models import Subscription
from invoicing.models import Invoice, InvoiceLine
from invoicing.services import billing_run_execute, subscription_change, subscription_start
from invoicing.services.backtest import plan_version_backtest
from metering.services import meter_create
from tests.factories.customers import CustomerFactory
from tests.factories.invoicing import events_create

from .helpers import utc

pytestmark = pytest.mark.django_db

JAN, FEB = utc(2026, 1, 1), utc(2026, 2, 1)
LATER = utc(2026, 3, 1)


@pytest.fixture(autouse=True)
def meter():
    meter_create(key="calls", name="API calls", event_name="api_call", aggregation="count")


def _plan(key: str, *, currency: str = "USD"):
    return plan_create(key=key, name=key.title(), currency=currency)


def _version(plan, fee: str, rate: str | None = None, *, publish: bool, **terms):
    prices = [{"name": "Platform fee", "model": "flat_fee", "amount": fee}]
    if rate is not None:
        prices.append({"name": "API calls", "model": "per_unit", "meter": "calls", "unit_amount": rate})
    return plan_version_create(
        plan=plan, prices=prices, publish=publish, effective_from="2020-01-01T00:00:00Z", now=JAN, **terms
    )


def _customer(external_id: str, calls: int):
    customer = CustomerFactory(external_id=external_id, currency="USD")
    if calls:
        events_create(
            customer_external_id=external_id,
            event_name="api_call",
            count=calls,
            start=utc(2026, 1, 5),
            prefix=external_id,
        )
    return customer


def _start(customer, plan, at=JAN, **kwargs):
    return subscription_start(
        customer=customer, plan=plan, start_at=at, billing="calendar", pinned_version=None, now=at, **kwargs
    )


def _january(version):
    result = plan_version_backtest(version=version, start=JAN, end=FEB, now=LATER)
    return {r.customer: (r.periods, r.actual, r.simulated, r.delta) for r in result.rows}, result.totals


def _snapshot():
    return sorted(
        (i.pk, i.status, i.total, tuple(i.lines.order_by("id").values_list("amount", flat=True)))
        for i in Invoice.objects.all()
    )


# --------------------------------------------------------------------------- minimum commitments


def test_commitment_true_up_is_on_both_sides():
    plan = _plan("api")
    v1 = _version(plan, "10.00", "0.01", publish=True, minimum_commitment="30.00")
    _start(_customer("small", 100), plan)
    _start(_customer("large", 3000), plan)
    billing_run_execute(now=FEB)
    # January as invoiced with v1 (10.00 + 0.01 a call, at least 30.00 a period):
    #   small: 10.00 + 100 x 0.01 = 11.00 < 30.00 -> true-up 19.00 on Feb 1's invoice: 30.00;
    #   large: 10.00 + 3,000 x 0.01 = 40.00 >= 30.00 -> no true-up: 40.00.
    true_up = InvoiceLine.objects.get(kind=InvoiceLine.Kind.COMMITMENT)
    assert (true_up.invoice.customer.external_id, true_up.amount) == ("small", Decimal("19.00"))
    rows, totals = _january(v1)
    assert rows == {
        "small": (1, Decimal("30.00"), Decimal("30.00"), Decimal(0)),
        "large": (1, Decimal("40.00"), Decimal("40.00"), Decimal(0)),
    }
    before = _snapshot()
    # Draft v2: 5.00 + 0.02 a call, at least 60.00: small 5.00 + 2.00 = 7.00 -> true-up 53.00: 60.00 (+30.00);
    # large 5.00 + 60.00 = 65.00 >= 60.00: 65.00 (+25.00). Totals 70.00 -> 125.00 (+55.00).
    v2 = _version(plan, "5.00", "0.02", publish=False, minimum_commitment="60.00")
    rows, totals = _january(v2)
    assert rows == {
        "small": (1, Decimal("30.00"), Decimal("60.00"), Decimal("30.00")),
        "large": (1, Decimal("40.00"), Decimal("65.00"), Decimal("25.00")),
    }
    assert (totals.actual, totals.simulated, totals.delta, totals.up) == (
        Decimal("70.00"),
        Decimal("125.00"),
        Decimal("55.00"),
        2,
    )
    # Draft v3: v1's prices without a commitment: small 11.00 (-19.00, the true-up it no longer pays), large
    # 40.00 (unchanged).
    v3 = _version(plan, "10.00", "0.01", publish=False)
    rows, totals = _january(v3)
    assert rows["small"][2:] == (Decimal("11.00"), Decimal("-19.00"))
    assert rows["large"][2:] == (Decimal("40.00"), Decimal(0))
    assert (totals.up, totals.down, totals.unchanged) == (0, 1, 1)
    assert _snapshot() == before  # nothing written


CENT = Decimal("0.01")
money = st.decimals(min_value=0, max_value=500, places=2)
commitment = st.one_of(st.none(), st.decimals(min_value=Decimal("0.01"), max_value=800, places=2))
unit = st.decimals(min_value=0, max_value=Decimal("0.05"), places=4)


def _cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    fee1=money,
    rate1=unit,
    min1=commitment,
    fee2=money,
    rate2=unit,
    min2=commitment,
    calls=st.lists(st.integers(0, 300), min_size=1, max_size=3),
)
def test_commitment_invariants(fee1, rate1, min1, fee2, rate2, min2, calls):
    """For any fees, unit prices, commitments (or none) and usage: a full period bills max(commitment, fee +
    usage), each rounded half-up to cents; the billing version re-rated finds every row unchanged; another
    version's simulated amount is the same formula with its own terms."""
    tag = uuid.uuid4().hex[:8]
    plan = _plan(f"p-{tag}")
    v1 = _version(plan, f"{fee1}", f"{rate1}", publish=True, minimum_commitment=min1 and f"{min1}")
    for i, n in enumerate(calls):
        _start(_customer(f"c-{tag}-{i}", n), plan)
        billing_run_execute(now=FEB, customer_external_id=f"c-{tag}-{i}")
    v2 = _version(plan, f"{fee2}", f"{rate2}", publish=False, minimum_commitment=min2 and f"{min2}")

    def period(fee, rate, least, n):
        charges = _cents(fee) + _cents(n * rate)
        return max(charges, least) if least is not None else charges

    same = plan_version_backtest(version=v1, start=JAN, end=FEB, now=LATER)
    assert same.totals.unchanged == len(calls)
    assert [r.actual for r in same.rows] == [period(fee1, rate1, min1, n) for n in calls]
    other = plan_version_backtest(version=v2, start=JAN, end=FEB, now=LATER)
    assert [r.simulated for r in other.rows] == [period(fee2, rate2, min2, n) for n in calls]
    assert other.totals.delta == sum(r.simulated - r.actual for r in other.rows)


# --------------------------------------------------------------------------- trials


def test_a_trial_period_compares_the_fees_billed_at_the_trial_end():
    plan = _plan("trialed")
    v1 = _version(plan, "31.00", publish=True, trial_days=10, minimum_commitment="25.00")
    sub = _start(_customer("trier", 0), plan)
    assert sub.trial_end == utc(2026, 1, 11)
    billing_run_execute(now=utc(2026, 1, 11, 1))
    billing_run_execute(now=FEB)
    # No fee for the 10 trial days; the trial end (Jan 11) bills the rest of January: 21 of 31 days x 31.00 =
    # 21.00 (its line starts on Jan 11, inside January). January's charges are then 21.00 < 25.00: Feb 1's
    # invoice has a true-up of 25.00 - 21.00 = 4.00 (the fee billed at the trial's end counts). January as
    # invoiced: 21.00 + 4.00 = 25.00.
    trial_end = Invoice.objects.get(reason=Invoice.Reason.TRIAL_END)
    assert (trial_end.billing_boundary_at, trial_end.subtotal) == (utc(2026, 1, 11), Decimal("21.00"))
    assert InvoiceLine.objects.get(kind=InvoiceLine.Kind.COMMITMENT).amount == Decimal("4.00")
    rows, _ = _january(v1)
    assert rows == {"trier": (1, Decimal("25.00"), Decimal("25.00"), Decimal(0))}
    # Draft v2: 62.00, no commitment: 21 of 31 days x 62.00 = 42.00, not a whole month's 62.00 (+17.00).
    rows, _ = _january(_version(plan, "62.00", publish=False))
    assert rows == {"trier": (1, Decimal("25.00"), Decimal("42.00"), Decimal("17.00"))}


# --------------------------------------------------------------------------- plan changes


def test_a_period_closed_by_a_change_at_its_end_is_compared():
    api, mini = _plan("api"), _plan("mini")
    v1 = _version(api, "10.00", "0.01", publish=True)
    _version(mini, "5.00", publish=True)
    sub = _start(_customer("shrinking", 100), api)
    subscription_change(subscription=sub, plan=mini, at="period_end", now=utc(2026, 1, 20))
    billing_run_execute(now=FEB)
    sub.refresh_from_db()
    # Feb 1 ends the api subscription: its change invoice (on it, boundary = January's end) bills January's
    # 100 calls x 0.01 = 1.00 and Mini's February fee 5.00. January as invoiced on api: 10.00 (Jan 1) + 1.00
    # = 11.00; Mini's 5.00 belongs to its new subscription.
    change = Invoice.objects.get(reason=Invoice.Reason.CHANGE)
    assert (change.subscription_id, change.subtotal) == (sub.pk, Decimal("6.00"))
    assert sub.status == Subscription.Status.ENDED
    rows, _ = _january(v1)
    assert rows == {"shrinking": (1, Decimal("11.00"), Decimal("11.00"), Decimal(0))}
    # Draft v2 = 5.00 + 0.02 a call: 5.00 + 2.00 = 7.00 (-4.00).
    rows, _ = _january(_version(api, "5.00", "0.02", publish=False))
    assert rows == {"shrinking": (1, Decimal("11.00"), Decimal("7.00"), Decimal("-4.00"))}
    # Mini's subscription starts on Feb 1: February is not closed yet, nothing of Mini is in January.
    assert plan_version_backtest(version=mini.versions.get(), start=JAN, end=FEB, now=LATER).rows == ()


def test_a_part_period_closed_by_a_change_at_once_is_compared():
    api, pro = _plan("api"), _plan("pro")
    v1 = _version(api, "31.00", "0.01", publish=True)
    pro_v1 = _version(pro, "62.00", publish=True)
    sub = _start(_customer("growing", 100), api)
    # On Jan 11 00:00 an upgrade to Pro, at once: the api subscription's January ends up as the part
    # [Jan 1, Jan 11). Its 31.00 paid in advance: 21 unused days (Jan 11-31) of 31 credited, 31.00 x 21/31 =
    # 21.00, so it kept 10.00. The change invoice (on the Pro subscription) bills api's part period: 100 calls
    # x 0.01 = 1.00, and Pro's fee for Jan 11-31: 62.00 x 21/31 = 42.00. January on api as invoiced: 31.00 -
    # 21.00 + 1.00 = 11.00.
    outcome = subscription_change(
        subscription=sub, plan=pro, at="now", effective_at=utc(2026, 1, 11), now=utc(2026, 1, 11)
    )
    assert outcome.credit_note.amount == Decimal("21.00")
    assert outcome.invoice.subtotal == Decimal("43.00")
    billing_run_execute(now=FEB)
    rows, _ = _january(v1)
    assert rows == {"growing": (1, Decimal("11.00"), Decimal("11.00"), Decimal(0))}
    # Draft v2 = 62.00 + 0.02 a call: 62.00 less the credit 62.00 x 21/31 = 42.00, so 20.00, + 100 x 0.02 =
    # 2.00: 22.00 (+11.00).
    rows, _ = _january(_version(api, "62.00", "0.02", publish=False))
    assert rows == {"growing": (1, Decimal("11.00"), Decimal("22.00"), Decimal("11.00"))}
    # Pro's side: its subscription's first period [Jan 11, Feb 1), its 42.00 billed on the change invoice and
    # closed on Feb 1, compares unchanged with Pro's own version; the change invoice opens it, so it is not
    # taken for a closed period of its own.
    result = plan_version_backtest(version=pro_v1, start=JAN, end=FEB, now=LATER)
    assert [(r.customer, r.periods, r.actual, r.simulated) for r in result.rows] == [
        ("growing", 1, Decimal("42.00"), Decimal("42.00"))
    ]


# --------------------------------------------------------------------------- price overrides


def test_a_subscription_with_a_price_override_is_simulated_with_it():
    plan = _plan("api")
    v1 = _version(plan, "10.00", "0.01", publish=True)
    _start(_customer("deal", 1000), plan, price_overrides=[{"price": "API calls", "unit_amount": "0.005"}])
    _start(_customer("list", 1000), plan)
    billing_run_execute(now=FEB)
    # January as invoiced: "deal" pays 0.005 a call (its override): 10.00 + 1,000 x 0.005 = 15.00; "list" pays
    # the plan's 0.01: 10.00 + 10.00 = 20.00.
    rows, _ = _january(v1)
    assert rows == {
        "deal": (1, Decimal("15.00"), Decimal("15.00"), Decimal(0)),
        "list": (1, Decimal("20.00"), Decimal("20.00"), Decimal(0)),
    }
    # Draft v2 = 5.00 + 0.02 a call, with a price named "API calls" too, so the override applies to it:
    # deal 5.00 + 1,000 x 0.005 = 10.00 (-5.00); list 5.00 + 1,000 x 0.02 = 25.00 (+5.00).
    rows, _ = _january(_version(plan, "5.00", "0.02", publish=False))
    assert rows == {
        "deal": (1, Decimal("15.00"), Decimal("10.00"), Decimal("-5.00")),
        "list": (1, Decimal("20.00"), Decimal("25.00"), Decimal("5.00")),
    }
