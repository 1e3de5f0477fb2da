"""Plan credits driven period by period: grant, the period's invoice spends, close (rollover / expiry)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import transaction

from customers import periods
from customers.periods import Period
from customers.services import subscription_row_create
from tests.factories.catalog import PlanCreditGrantFactory, PlanFactory, PlanVersionFactory
from tests.factories.customers import CustomerFactory
from tests.wallets.conftest import assert_ledger_whole
from wallets.models import CreditGrant, LedgerEntry, Wallet
from wallets.services import plan_credits_close, plan_credits_grant_period, wallet_consume_locked

pytestmark = pytest.mark.django_db

JAN = datetime(2026, 1, 1, tzinfo=UTC)


def _subscription(**grant_fields):
    plan = PlanFactory(currency="USD")
    version = PlanVersionFactory(plan=plan, published=True)
    PlanCreditGrantFactory(plan_version=version, **grant_fields)
    customer = CustomerFactory(currency="USD")
    with transaction.atomic():
        sub = subscription_row_create(customer=customer, plan=plan, start_at=JAN, billing="calendar")
    return sub


def _advance(sub, period: Period) -> Period:
    """What the boundary does after closing: the next period (version unchanged in these tests)."""
    nxt = periods.next_period(sub.billing, sub.start_at, sub.plan.interval, period)
    sub.current_period_start, sub.current_period_end = nxt.start, nxt.end
    sub.save(update_fields=["current_period_start", "current_period_end"])
    return nxt


def _held(sub) -> Decimal:
    return Wallet.objects.get(customer=sub.customer).balance


def test_clay_starter_2000_a_month_cap_2000():
    # Clay's Starter: 2,000 credits a month, rollover cap 2,000, 1 credit = $1.
    sub = _subscription(credits=Decimal(2000), rollover_cap=Decimal(2000))
    held = []
    period = Period(sub.current_period_start, sub.current_period_end)  # January
    usage = {0: Decimal(1000)}  # January uses 1,000; later months nothing
    with transaction.atomic():
        plan_credits_grant_period(subscription=sub, period=period, now=period.start)
        for month in range(3):
            if usage.get(month):
                wallet = Wallet.objects.get(customer=sub.customer)
                wallet_consume_locked(
                    wallet=wallet,
                    credits=usage[month],
                    reference="usage",
                    idempotency_key=f"m{month}",
                    now=period.start,
                )
            plan_credits_close(subscription=sub, period=period, ending=False, now=period.end)
            period = _advance(sub, period)
            plan_credits_grant_period(subscription=sub, period=period, now=period.start)
            held.append(_held(sub))
        # Re-running a close and a grant changes nothing (idempotent).
        plan_credits_grant_period(subscription=sub, period=period, now=period.start)
    # February: 2,000 - 1,000 = 1,000 unused <= cap, all carry; + 2,000 = 3,000.
    # March: 3,000 unused, min(3,000, 2,000) = 2,000 carry (1,000 expire); + 2,000 = 4,000.
    # April: 4,000 unused, 2,000 carry (2,000 expire); + 2,000 = 4,000.
    assert held == [Decimal(3000), Decimal(4000), Decimal(4000)]
    # Expired: 0 at January's end, 1,000 at February's, 2,000 at March's.
    expired = LedgerEntry.objects.filter(type="expire").order_by("id").values_list("credits", flat=True)
    assert sum(expired) == Decimal(-3000)
    # The carried credits are the newest lot's (longest-lived): January's lot expired, February's keeps going.
    lots = list(CreditGrant.objects.filter(subscription=sub).order_by("period_start"))
    assert [lot.remaining for lot in lots] == [0, 0, 2000, 2000]
    assert_ledger_whole(Wallet.objects.get(customer=sub.customer))


def test_100_a_month_all_roll_over_expiring_after_2_periods_holds_200():
    # 100 a month, no cap, each month's lot expires 2 periods after its grant (at the end of the next period):
    # at every period start after the first: last month's 100 + this month's 100 = 200.
    sub = _subscription(credits=Decimal(100), rollover_cap=None, expire_after_periods=2)
    period = Period(sub.current_period_start, sub.current_period_end)
    held = []
    with transaction.atomic():
        plan_credits_grant_period(subscription=sub, period=period, now=period.start)
        held.append(_held(sub))
        for _ in range(4):
            plan_credits_close(subscription=sub, period=period, ending=False, now=period.end)
            period = _advance(sub, period)
            plan_credits_grant_period(subscription=sub, period=period, now=period.start)
            held.append(_held(sub))
    assert held == [Decimal(100)] + [Decimal(200)] * 4
    first = CreditGrant.objects.filter(subscription=sub).order_by("period_start").first()
    assert first.expires_at == datetime(2026, 3, 1, tzinfo=UTC)  # January's credits expire at February's end
    assert_ledger_whole(Wallet.objects.get(customer=sub.customer))


def test_cap_zero_expires_everything_and_once_cadence_grants_only_the_first_period():
    sub = _subscription(credits=Decimal(50), rollover_cap=Decimal(0), cadence="once")
    period = Period(sub.current_period_start, sub.current_period_end)
    with transaction.atomic():
        plan_credits_grant_period(subscription=sub, period=period, now=period.start)
        assert _held(sub) == 50
        plan_credits_close(subscription=sub, period=period, ending=False, now=period.end)
        period = _advance(sub, period)
        plan_credits_grant_period(subscription=sub, period=period, now=period.start)
    assert _held(sub) == 0  # 50 unused, cap 0: all expire; "once" grants nothing for February
    assert CreditGrant.objects.filter(subscription=sub).count() == 1
    assert_ledger_whole(Wallet.objects.get(customer=sub.customer))


def test_forfeit_on_end():
    sub = _subscription(credits=Decimal(70), rollover_cap=None, forfeit_on_end=True)
    period = Period(sub.current_period_start, sub.current_period_end)
    with transaction.atomic():
        plan_credits_grant_period(subscription=sub, period=period, now=period.start)
        plan_credits_close(subscription=sub, period=period, ending=True, now=period.end)
    assert _held(sub) == 0
    row = LedgerEntry.objects.get(type="expire")
    assert (row.credits, row.description) == (Decimal(-70), "Forfeited: the subscription ended")
    assert_ledger_whole(Wallet.objects.get(customer=sub.customer))


def test_plan_credits_go_to_the_first_active_wallet_in_the_plan_currency():
    sub = _subscription(credits=Decimal(10))
    period = Period(sub.current_period_start, sub.current_period_end)
    with transaction.atomic():
        plan_credits_grant_period(subscription=sub, period=period, now=period.start)
    wallet = Wallet.objects.get(customer=sub.customer)
    assert (wallet.currency, wallet.conversion_rate, wallet.applies_to, wallet.balance) == ("USD", 1, "all", 10)
