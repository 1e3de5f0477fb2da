"""Query counts of the period boundary: a small constant per subscription, whatever the number of usage prices.

Inside a test the boundary's durable transaction is a savepoint of the test's transaction, so the counts
below include ``SAVEPOINT``/``RELEASE`` where production sends ``BEGIN``/``COMMIT``.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from catalog.models import Price
from customers.models import Subscription
from invoicing.models import Invoice, InvoiceLine
from invoicing.services.boundary import subscription_bill_once
from invoicing.services.run import RunSummary, batch_prefetch, subscriptions_bill
from tests.factories.catalog import PlanVersionFactory, PriceFactory
from tests.factories.customers import CustomerFactory, TaxRateFactory
from tests.factories.invoicing import events_create
from tests.factories.metering import MeterFactory

from .helpers import invoices_of, start, utc

FEB1 = utc(2026, 2, 1)

# customer lock (wallet flag and tax rates along), subscription lock (next version along), INSERT invoice
# (ON CONFLICT DO NOTHING), INSERT lines (one statement), UPDATE subscription, number, UPDATE invoice, and
# the transaction's own SAVEPOINT + RELEASE here; and one "does a webhook endpoint listen?" per event offered to
# the outbox (invoice.created, invoice.finalized: none listens here, so nothing more is read or written).
BOUNDARY_QUERIES = 11


def _subscription(usage_prices: int, tag: str) -> Subscription:
    """$49/month in advance plus ``usage_prices`` prices of $0.01 per event, 2 events each in January."""
    version = PlanVersionFactory(published=True, number=1)
    PriceFactory(plan_version=version, name="Platform", amount=Decimal("49"))
    for i in range(usage_prices):
        meter = MeterFactory()
        PriceFactory(
            plan_version=version,
            name=f"Usage {i}",
            model=Price.Model.PER_UNIT,
            timing=Price.Timing.IN_ARREARS,
            amount=None,
            unit_amount=Decimal("0.01"),
            meter=meter,
            position=i + 1,
        )
        events_create(
            customer_external_id=tag, event_name=meter.event_name, count=2, start=utc(2026, 1, 2), prefix=f"m{i}"
        )
    customer = CustomerFactory(external_id=tag)
    customer.tax_rates.add(TaxRateFactory(code=f"vat-{tag}", name="VAT 20%", percentage=Decimal("20")))
    return start(customer, version.plan, utc(2026, 1, 1))


def _bill_boundary(sub: Subscription) -> CaptureQueriesContext:
    batch = batch_prefetch(subscription_ids=[sub.pk], now=FEB1)
    with CaptureQueriesContext(connection) as ctx:
        processed, invoice = subscription_bill_once(
            subscription_id=sub.pk, now=FEB1, usage=batch.usage[sub.pk], sheets=batch.sheets
        )
    assert processed and invoice is not None
    return ctx


@pytest.mark.django_db
def test_boundary_makes_the_same_small_number_of_queries_for_1_or_6_usage_prices():
    one = _bill_boundary(_subscription(1, "one-price"))
    six_sub = _subscription(6, "six-prices")
    six = _bill_boundary(six_sub)
    assert len(one) == len(six) == BOUNDARY_QUERIES, [q["sql"][:120] for q in six.captured_queries]
    # The same invoice as ever: January usage 6 prices x 2 events x $0.01 = $0.12, plus February's fee in
    # advance $49.00: subtotal $49.12; VAT 20% x $49.12 = $9.824 -> $9.82; total $58.94.
    feb = invoices_of(six_sub)[1]
    assert (feb.subtotal, feb.tax, feb.total) == (Decimal("49.12"), Decimal("9.82"), Decimal("58.94"))
    assert feb.status == Invoice.Status.FINALIZED and feb.number and feb.lines.count() == 7
    assert sorted(line.amount for line in feb.lines.all()) == [Decimal("0.02")] * 6 + [Decimal("49.00")]


@pytest.mark.django_db
def test_boundary_of_a_customer_without_wallet_reads_no_wallet_table_and_writes_no_history():
    sub = _subscription(2, "no-wallet")
    ctx = _bill_boundary(sub)
    sql = " ".join(q["sql"] for q in ctx.captured_queries)
    # One EXISTS inside the customer lock; no wallet or grant row is read or locked otherwise.
    assert sql.count("wallets_") == 1 and "wallets_creditgrant" not in sql
    assert "historicalsubscription" not in sql
    sub.refresh_from_db()
    assert (sub.current_period_start, sub.current_period_end) == (FEB1, utc(2026, 3, 1))


@pytest.mark.django_db
def test_run_queries_do_not_grow_with_the_meters_of_a_batch():
    def run_queries(sub: Subscription) -> int:
        summary = RunSummary(as_of=FEB1)
        with CaptureQueriesContext(connection) as ctx:
            subscriptions_bill(subscription_ids=[sub.pk], now=FEB1, summary=summary)
        assert summary.invoices_created == 1 and not summary.failures
        return len(ctx)

    one = run_queries(_subscription(1, "run-one"))
    six = run_queries(_subscription(6, "run-six"))
    # Per batch of subscriptions, the usage of all its meters is two queries (the meters' watermarks and
    # filters, then one statement with a part per meter; docs/metering.md "Round trips of a read"):
    # 6 meters cost what 1 does, 6 - 1 = 5 meters add 0 queries.
    assert six - one == 0


@pytest.mark.django_db
def test_ending_at_period_end_keeps_its_history_row():
    sub = _subscription(1, "ending")
    Subscription.objects.filter(pk=sub.pk).update(cancel_at_period_end=True)
    before = sub.history.count()
    ctx = _bill_boundary(sub)
    sub.refresh_from_db()
    assert sub.status == Subscription.Status.ENDED and sub.ended_at == FEB1
    assert sub.history.count() == before + 1
    assert any("historicalsubscription" in q["sql"] for q in ctx.captured_queries)


@pytest.mark.django_db
def test_a_boundary_already_billed_inserts_nothing_and_leaves_the_transaction_usable():
    from customers.periods import Period
    from invoicing.services.context import tax_rates_of
    from invoicing.services.invoices import invoice_create_for_period
    from invoicing.services.lines import LineDraft

    sub = _subscription(0, "twice")
    lines = [LineDraft(kind=InvoiceLine.Kind.ADJUSTMENT, description="One-off", amount=Decimal("5.00"))]
    args = dict(
        customer=sub.customer,
        subscription=sub,
        boundary_at=FEB1,
        period=Period(utc(2026, 1, 1), FEB1),
        now=FEB1,
        tax_rates=tax_rates_of(sub.customer),
        reason=Invoice.Reason.BOUNDARY,
    )
    first = invoice_create_for_period(lines=lines, **args)
    assert first is not None and first.pk and first.lines.count() == 1 and first.total == Decimal("6.00")  # 5 + 20%
    assert invoice_create_for_period(lines=list(lines), **args) is None
    # No savepoint was needed: the transaction goes on, and there is still one invoice for the boundary.
    assert Invoice.objects.filter(subscription=sub, billing_boundary_at=FEB1).count() == 1
