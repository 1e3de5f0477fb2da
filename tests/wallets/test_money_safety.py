"""Property: no sequence of API calls and billing runs creates value without a payment or a grant.

Each example is one fresh customer (a wallet at a drawn rate, maybe a low-balance auto top-up, maybe VAT, maybe
grace days) on a plan of $10.00 a month in advance plus $1.00 per call in arrears, with 5 plan credits a month
(rollover cap 2). A drawn list of operations then runs against it: grants by an allowed source (the API, kind
``promotional``), usage events, billing runs stepping a simulated clock (period ends, draft finalization,
expiry, alerts and auto top-ups), payments, credit notes to the invoice and to the wallet, voids, finalize and
recalculate, on any of the customer's invoices, with amounts that may be too large, and plan changes (to a
$20.00 plan at once, an upgrade, or to a $5.00 plan, a downgrade scheduled for the period's end) whose credit
notes refund unused fees to the invoice or the wallet and whose plan credits follow the money.

After every step, with every figure exact (``Decimal``, rates that divide money evenly):

    worth      = sum of the wallets' balances x their rates     (what the customer's credits are worth)
    owed       = sum of amount_due of its finalized invoices    (what it still has to pay)
    paid       = sum of its payments                            (money it put in)
    granted    = promotional and plan grants x their rates      (value given on purpose)

    worth - owed - paid - granted <= 0

A charge lowers the left side, a payment leaves it alone, a credit note or a void may raise it back by at most
what its invoice charged; anything else that raises it is value for nothing (H1: a wallet refund of an unpaid
invoice followed by a void; a wallet refund of an unpaid auto top-up). No response is a 5xx, and every wallet's
ledger check holds (balance == ledger == lots, held == holds).
"""

from __future__ import annotations

import itertools
from datetime import timedelta
from decimal import ROUND_DOWN, Decimal

import pytest
from django.db.models import Sum
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from catalog.models import Plan
from core.auth import api_key_create
from core.errors import BillingError
from customers.models import Customer, Subscription
from invoicing.models import Invoice, Payment
from invoicing.services import billing_run_execute, subscription_change
from tests.factories.catalog import PlanCreditGrantFactory, PlanVersionFactory, PriceFactory
from tests.factories.customers import TaxRateFactory
from tests.factories.metering import MeterFactory
from tests.invoicing.helpers import start, utc
from wallets.models import CreditGrant, Wallet
from wallets.selectors import wallet_ledger_check

pytestmark = pytest.mark.django_db

T0 = utc(2026, 1, 1)
#: The instants billing runs step through: period ends and the end of a 2-day grace after each.
RUN_AT = [utc(2026, 2, 1), utc(2026, 2, 3), utc(2026, 3, 1), utc(2026, 3, 3)]
CENT = Decimal("0.01")
_customers = itertools.count()

operations = st.one_of(
    st.tuples(st.just("grant"), st.sampled_from(["3", "10", "25"])),
    st.tuples(st.just("events"), st.integers(1, 15)),
    st.tuples(st.just("run")),
    st.tuples(st.just("pay"), st.integers(0, 9), st.sampled_from(["0.5", "1", "1.5"])),
    st.tuples(
        st.just("note"),
        st.integers(0, 9),
        st.sampled_from(["0.1", "0.5", "1", "1.2"]),
        st.sampled_from(["invoice", "wallet"]),
    ),
    st.tuples(st.just("void"), st.integers(0, 9)),
    st.tuples(st.just("finalize"), st.integers(0, 9)),
    st.tuples(st.just("recalculate"), st.integers(0, 9)),
    st.tuples(st.just("change"), st.sampled_from(["bigger", "smaller"]), st.integers(1, 20)),
)
customers = st.fixed_dictionaries(
    {
        "grace": st.sampled_from([0, 2]),
        "rate": st.sampled_from(["1", "0.5", "2"]),
        "applies_to": st.sampled_from(["all", "usage"]),
        "top_up": st.booleans(),
        "vat": st.booleans(),
        "credits": st.sampled_from([None, "8", "40"]),
    }
)


@pytest.fixture
def plan(db):
    version = PlanVersionFactory(published=True, number=1)
    meter = MeterFactory(event_name="ms_call")
    PriceFactory(plan_version=version, amount=Decimal("10.00"))
    PriceFactory(plan_version=version, per_unit=True, meter=meter, unit_amount=Decimal("1"))
    PlanCreditGrantFactory(plan_version=version, credits=Decimal(5), rollover_cap=Decimal(2))
    TaxRateFactory(code="vat-20", percentage=Decimal("20"))
    for name, fee in (("bigger", "20.00"), ("smaller", "5.00")):
        other = PlanVersionFactory(published=True, number=1, plan__key=f"ms-{name}", plan__currency="USD")
        PriceFactory(plan_version=other, amount=Decimal(fee))
        PriceFactory(plan_version=other, per_unit=True, meter=meter, unit_amount=Decimal("1"))
        PlanCreditGrantFactory(plan_version=other, credits=Decimal(8), rollover_cap=Decimal(2))
    return version.plan


def _client() -> APIClient:
    """A fresh key per example, so the write throttle never answers for the property."""
    _, raw = api_key_create(name="money-safety")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    client.default_format = "json"
    return client


def _position(customer: Customer) -> Decimal:
    """worth - owed - paid - granted (see the module docstring)."""
    wallets = list(Wallet.objects.filter(customer=customer))
    worth = sum((w.balance * w.conversion_rate for w in wallets), Decimal(0))
    owed = Invoice.objects.filter(customer=customer, status=Invoice.Status.FINALIZED).aggregate(s=Sum("amount_due"))[
        "s"
    ] or Decimal(0)
    paid = Payment.objects.filter(invoice__customer=customer).aggregate(s=Sum("amount"))["s"] or Decimal(0)
    granted = sum(
        (
            g.credits * g.wallet.conversion_rate
            for g in CreditGrant.objects.filter(
                wallet__customer=customer, kind__in=[CreditGrant.Kind.PROMOTIONAL, CreditGrant.Kind.PLAN]
            ).select_related("wallet")
        ),
        Decimal(0),
    )
    return worth - owed - paid - granted


def _share(amount: Decimal, fraction: str) -> Decimal:
    return max((amount * Decimal(fraction)).quantize(CENT, rounding=ROUND_DOWN), CENT)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(setup=customers, ops=st.lists(operations, max_size=10))
def test_no_value_without_a_payment_or_a_grant(plan, setup, ops):
    api = _client()
    n = next(_customers)
    external_id = f"ms-{n}"
    customer = Customer.objects.create(
        external_id=external_id, name=external_id, currency="USD", invoice_grace_days=setup["grace"]
    )
    if setup["vat"]:
        customer.tax_rates.add(TaxRateFactory(code="vat-20"))
    body = {
        "customer": external_id,
        "currency": "USD",
        "conversion_rate": setup["rate"],
        "applies_to": setup["applies_to"],
    }
    if setup["top_up"]:
        body |= {"low_balance_threshold": "10", "auto_top_up_credits": "20"}
    wallet_id = api.post("/api/v1/wallets", body).json()["id"]
    if setup["credits"]:
        api.post(
            f"/api/v1/wallets/{wallet_id}/grants",
            {"credits": setup["credits"], "kind": "promotional", "effective_at": T0.isoformat()},
        )
    start(customer, plan, T0)
    clock = iter(RUN_AT)
    now = T0
    events = itertools.count()

    def check(step) -> None:
        position = _position(customer)
        assert position <= 0, f"value created by {step}: {position}"
        for wallet in Wallet.objects.filter(customer=customer):
            assert wallet_ledger_check(wallet=wallet).ok, (step, wallet_ledger_check(wallet=wallet))

    check("setup")
    for op in ops:
        invoices = list(Invoice.objects.filter(customer=customer).order_by("id"))
        target = (
            invoices[op[1] % len(invoices)]
            if len(op) > 1 and invoices and op[0] not in ("grant", "events", "change")
            else None
        )
        response = None
        if op[0] == "grant":
            response = api.post(
                f"/api/v1/wallets/{wallet_id}/grants",
                {"credits": op[1], "kind": "promotional", "effective_at": T0.isoformat()},
            )
        elif op[0] == "events":
            batch = [
                {
                    "event_id": f"{external_id}-{next(events)}",
                    "customer": external_id,
                    "event_name": "ms_call",
                    "timestamp": (now + timedelta(hours=1)).isoformat(),
                }
                for _ in range(op[1])
            ]
            response = api.post("/api/v1/events/batch", {"events": batch})
        elif op[0] == "run":
            now = next(clock, now)
            summary = billing_run_execute(now=now, customer_external_id=external_id)
            assert not summary.failures, summary.failures
        elif op[0] == "change":
            # A plan change of the customer's active subscription op[2] days into its current period (the
            # service the API and the admin call); refusals (ended, scheduled already, outside the period) are fine.
            active = Subscription.objects.filter(customer=customer, status=Subscription.Status.ACTIVE).first()
            if active is None:
                continue
            at = active.current_period_start + timedelta(days=op[2], hours=1)
            if at >= active.current_period_end:
                continue
            try:
                subscription_change(subscription=active, plan=Plan.objects.get(key=f"ms-{op[1]}"), now=at)
            except BillingError:
                pass
        elif target is None:
            continue
        elif op[0] == "pay":
            amount = _share(target.amount_due, op[2])
            response = api.post(f"/api/v1/invoices/{target.pk}/payments", {"amount": str(amount)})
        elif op[0] == "note":
            amount = _share(target.total, op[2])
            response = api.post(
                "/api/v1/credit_notes",
                {"invoice": str(target.pk), "amount": str(amount), "reason": "property", "refund_to": op[3]},
            )
        else:  # void, finalize, recalculate
            response = api.post(f"/api/v1/invoices/{target.pk}/{op[0]}")
        if response is not None:
            assert response.status_code < 500, (op, response.status_code, response.content[:300])
        check(op)
