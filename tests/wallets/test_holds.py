"""Holds through the real boundary and API: a draft's credits are reserved, not spent (DESIGN.md, Wallets and credits)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from catalog.models import Price
from invoicing.models import Invoice
from invoicing.services import billing_run_execute, invoice_recalculate
from tests.factories.catalog import PlanCreditGrantFactory, PlanVersionFactory, PriceFactory
from tests.factories.customers import CustomerFactory, TaxRateFactory
from tests.factories.invoicing import events_create
from tests.factories.metering import MeterFactory
from tests.invoicing.helpers import invoices_of, start, utc
from tests.wallets.conftest import assert_ledger_whole
from wallets.models import CreditGrant, CreditHold, Wallet
from wallets.services import wallet_create, wallet_grant_create

pytestmark = pytest.mark.django_db

JAN = utc(2026, 1, 1)


def _ledger(wallet) -> list[tuple[str, Decimal]]:
    return list(wallet.ledger.order_by("id").values_list("type", "credits"))


def test_lago_a_draft_holds_6_of_10_credits_balance_10_real_time_4_then_finalized_balance_4(api):
    # Lago's case: a wallet of 10 credits at rate 1; a 6.00 in-advance fee on a draft (3 grace days). The hold
    # reserves 6 credits: balance (the ledger) 10, real-time 10 - 6 = 4. Finalizing books one consume of 6:
    # balance 4 (and real-time 4).
    version = PlanVersionFactory(published=True, number=1)
    PriceFactory(plan_version=version, amount=Decimal("6.00"))
    customer = CustomerFactory(external_id="lago", invoice_grace_days=3)
    wallet = wallet_create(customer=customer, currency="USD")
    wallet_grant_create(wallet=wallet, credits=Decimal(10), kind="promotional", effective_at=JAN, now=JAN)
    start(customer, version.plan, JAN)
    [draft] = Invoice.objects.filter(customer=customer)
    assert (draft.status, draft.total, draft.credits_applied, draft.amount_due) == ("draft", 6, 6, 0)

    body = api.get(f"/api/v1/wallets/{wallet.pk}").json()
    assert (body["balance"], body["real_time_balance"]) == ("10", "4")
    assert _ledger(wallet) == [("grant", 10)]

    response = api.post(f"/api/v1/invoices/{draft.pk}/finalize")
    assert response.status_code == 200 and response.json()["credits_applied"] == "6.00"
    assert response.json()["status"] == "paid"  # nothing due: settled by the credits
    body = api.get(f"/api/v1/wallets/{wallet.pk}").json()
    assert (body["balance"], body["real_time_balance"]) == ("4", "4")
    assert _ledger(wallet) == [("grant", 10), ("consume", -6)]
    assert wallet.ledger.get(type="consume").invoice_id == draft.pk
    assert CreditHold.objects.get(invoice_id=draft.pk).status == CreditHold.Status.CONSUMED
    assert_ledger_whole(wallet)


def test_recalculating_a_draft_writes_no_ledger_row():
    # The same $6 draft recalculated twice: the hold is released and placed again each time, the ledger
    # keeps its single grant row and the balance stays 10.
    version = PlanVersionFactory(published=True, number=1)
    PriceFactory(plan_version=version, amount=Decimal("6.00"))
    customer = CustomerFactory(invoice_grace_days=3)
    wallet = wallet_create(customer=customer, currency="USD")
    wallet_grant_create(wallet=wallet, credits=Decimal(10), kind="promotional", effective_at=JAN, now=JAN)
    start(customer, version.plan, JAN)
    draft = Invoice.objects.get(customer=customer)
    for day in (2, 3):
        invoice_recalculate(invoice=draft, now=utc(2026, 1, day))
    wallet.refresh_from_db()
    assert wallet.balance == 10 and _ledger(wallet) == [("grant", 10)]
    assert list(CreditHold.objects.filter(invoice_id=draft.pk).order_by("id").values_list("status", flat=True)) == [
        "released",
        "released",
        "held",
    ]
    assert wallet.grants.get().held == 6
    assert_ledger_whole(wallet)


def test_held_plan_credits_neither_expire_nor_roll_over_at_the_period_end():
    # 10 plan credits a month, rollover cap 0, $1 per unit in arrears, 3 grace days. January uses 6 units.
    # Feb 1: the draft (January's $6.00) holds 6 of January's 10 credits before the close; the close expires
    # the 4 free ones only (cap 0); February's 10 arrive. Balance 10 - 4 + 10 = 16, of which 6 held.
    # Feb 4 (grace over): finalizing consumes the 6 held: balance 10, January's lot empty.
    version = PlanVersionFactory(published=True, number=1)
    meter = MeterFactory(event_name="unit")
    PriceFactory(plan_version=version, per_unit=True, meter=meter, unit_amount=Decimal("1"))
    PlanCreditGrantFactory(plan_version=version, credits=Decimal(10), rollover_cap=Decimal(0))
    customer = CustomerFactory(external_id="held", invoice_grace_days=3)
    sub = start(customer, version.plan, JAN)
    events_create(customer_external_id="held", event_name="unit", count=6, start=utc(2026, 1, 10))
    billing_run_execute(now=utc(2026, 2, 1))
    wallet = Wallet.objects.get(customer=customer)
    january, february = CreditGrant.objects.filter(wallet=wallet).order_by("period_start")
    _, draft = invoices_of(sub)
    assert (draft.status, draft.total, draft.credits_applied) == ("draft", 6, 6)
    assert (january.remaining, january.held, january.status) == (6, 6, "expired")  # only held credits left
    assert (february.remaining, february.held) == (10, 0)
    assert _ledger(wallet) == [("grant", 10), ("expire", -4), ("grant", 10)]
    wallet.refresh_from_db()
    assert wallet.balance == 16
    assert_ledger_whole(wallet)

    billing_run_execute(now=utc(2026, 2, 4))
    draft.refresh_from_db()
    wallet.refresh_from_db()
    january.refresh_from_db()
    assert draft.status == "paid" and draft.credits_applied == 6
    assert (wallet.balance, january.remaining, january.held) == (10, 0, 0)
    assert _ledger(wallet)[-1] == ("consume", -6)
    assert_ledger_whole(wallet)


def test_real_time_balance_counts_the_periods_usage_not_its_fixed_fees(api):
    # A $20.00 fee in arrears and $0.01 per call, VAT 20%. 100 credits at rate 1; 1,000 calls so far this
    # (January) period: usage 1,000 x 0.01 = $10.00 + $2.00 tax = $12.00 -> real-time 100 - 12 = 88. The fee
    # is not usage: counting it (and its $4.00 tax) too would have given 100 - 36 = 64.
    version = PlanVersionFactory(published=True, number=1)
    PriceFactory(plan_version=version, amount=Decimal("20.00"), timing=Price.Timing.IN_ARREARS)
    meter = MeterFactory(event_name="call")
    PriceFactory(plan_version=version, per_unit=True, meter=meter)
    customer = CustomerFactory(external_id="rt")
    customer.tax_rates.add(TaxRateFactory(code="vat-20", percentage=Decimal("20")))
    wallet = wallet_create(customer=customer, currency="USD")
    wallet_grant_create(wallet=wallet, credits=Decimal(100), kind="promotional", effective_at=JAN, now=JAN)
    start(customer, version.plan, JAN)  # nothing in advance: the start invoice is $0
    events_create(customer_external_id="rt", event_name="call", count=1000, start=utc(2026, 1, 2))
    body = api.get(f"/api/v1/wallets/{wallet.pk}").json()
    assert (body["balance"], body["real_time_balance"]) == ("100", "88")
