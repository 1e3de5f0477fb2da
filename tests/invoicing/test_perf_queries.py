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
# (ON CONFLICT DO NOTHING), INSERT lines (one statement), UPDATE subscription, UPDATE invoice taking its number
# in the same statement (invoicing.services.numbering), and the transaction's own SAVEPOINT + RELEASE here; and
# one "does a webhook endpoint listen?" per event offered to the outbox (invoice.created, invoice.finalized: none
# listens here, so nothing more is read or written; a run reads the endpoints once per batch instead).
BOUNDARY_QUERIES = 10


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


@pytest.mark.django_db
def test_a_run_reads_the_webhook_endpoints_once_per_batch_when_none_listens_to_invoice_events():
    from core.models import OutboxEvent, WebhookEndpoint

    WebhookEndpoint.objects.create(url="https://a.example/h", events=["customer.created"], secret="s1")
    WebhookEndpoint.objects.create(url="https://c.example/h", events=["*"], secret="s3", enabled=False)
    subs = [_subscription(1, f"quiet-{i}") for i in range(3)]
    before = OutboxEvent.objects.count()
    summary = RunSummary(as_of=FEB1)
    with CaptureQueriesContext(connection) as ctx:
        subscriptions_bill(subscription_ids=[s.pk for s in subs], now=FEB1, summary=summary)
    assert summary.invoices_created == 3 and not summary.failures
    # Three invoices, two events each, in one batch: one read of the endpoints instead of 3 x 2 = 6.
    assert sum("core_webhookendpoint" in q["sql"] for q in ctx.captured_queries) == 1
    assert OutboxEvent.objects.count() == before  # nobody listens: nothing written, as without the snapshot


@pytest.mark.django_db
def test_a_run_with_listening_endpoints_records_the_same_events_and_deliveries():
    from core.models import OutboxEvent, WebhookDelivery, WebhookEndpoint

    subs = [_subscription(1, f"outbox-{i}") for i in range(3)]  # before the endpoints: their start sends nothing
    created_only = WebhookEndpoint.objects.create(url="https://a.example/h", events=["invoice.created"], secret="s1")
    everything = WebhookEndpoint.objects.create(url="https://b.example/h", events=["*"], secret="s2")
    WebhookEndpoint.objects.create(url="https://c.example/h", events=["*"], secret="s3", enabled=False)
    summary = RunSummary(as_of=FEB1)
    subscriptions_bill(subscription_ids=[s.pk for s in subs], now=FEB1, summary=summary)
    assert summary.invoices_created == 3 and not summary.failures
    # Per invoice: invoice.created (to both enabled endpoints) and invoice.finalized (to the "*" endpoint only):
    # 3 x 2 = 6 events, 3 x (2 + 1) = 9 deliveries; none to the disabled endpoint.
    events = OutboxEvent.objects.filter(type__startswith="invoice.")
    assert sorted(e.type for e in events) == ["invoice.created"] * 3 + ["invoice.finalized"] * 3
    deliveries = WebhookDelivery.objects.filter(event__in=events)
    assert deliveries.filter(endpoint=created_only).count() == 3
    assert deliveries.filter(endpoint=everything).count() == 6
    assert deliveries.count() == 9


def _run_changing_endpoints_after_the_first(monkeypatch, subs, change) -> RunSummary:
    """Bill ``subs`` in batches of two, calling ``change()`` right after the first subscription is billed."""
    from invoicing.services import run

    monkeypatch.setattr(run, "USAGE_BATCH", 2)
    real = run._subscription_bill

    def bill_then_change(subscription_id, **kwargs):
        done = real(subscription_id, **kwargs)
        if subscription_id == subs[0].pk:
            change()
        return done

    monkeypatch.setattr(run, "_subscription_bill", bill_then_change)
    summary = RunSummary(as_of=FEB1)
    subscriptions_bill(subscription_ids=[s.pk for s in subs], now=FEB1, summary=summary)
    return summary


@pytest.mark.django_db
def test_an_endpoint_created_during_a_run_listens_from_the_next_batch(monkeypatch):
    from core.models import WebhookDelivery, WebhookEndpoint

    subs = [_subscription(0, f"late-{i}") for i in range(4)]

    def add():
        WebhookEndpoint.objects.create(url="https://late.example/h", events=["*"], secret="s")

    summary = _run_changing_endpoints_after_the_first(monkeypatch, subs, add)
    assert summary.invoices_created == 4 and not summary.failures
    # Rule (core.outbox.outbox_listeners_snapshot): it counts from the next batch, i.e. subscriptions 3 and 4,
    # whose invoices each send invoice.created and invoice.finalized: 2 x 2 = 4 deliveries.
    assert WebhookDelivery.objects.count() == 4


@pytest.mark.django_db
def test_an_endpoint_deleted_during_a_run_gets_nothing_more_and_fails_nothing(monkeypatch):
    from core.models import WebhookDelivery, WebhookEndpoint

    subs = [_subscription(0, f"gone-{i}") for i in range(4)]
    endpoint = WebhookEndpoint.objects.create(url="https://gone.example/h", events=["*"], secret="s")
    summary = _run_changing_endpoints_after_the_first(
        monkeypatch, subs, lambda: WebhookEndpoint.objects.filter(pk=endpoint.pk).delete()
    )
    # The snapshot still lists it for the rest of the batch, but a listened-to event reads the endpoints
    # exactly: subscriptions 2-4 write no delivery for the deleted endpoint (which would fail their commit),
    # and the first subscription's 2 deliveries went with the endpoint (cascade).
    assert summary.invoices_created == 4 and not summary.failures
    assert WebhookDelivery.objects.count() == 0
