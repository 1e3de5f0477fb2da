"""The event catalogue: each service records its event, in its transaction, with the API's representation.

Setup: an endpoint for ``*``; a $30.00 monthly plan started on 2026-03-01 (invoice INV-000001, $30.00, finalized
at once: grace 0); then the lifecycle verbs one by one, each checked by the events it added.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command

from core.models import OutboxEvent
from customers.services import customer_create
from invoicing.models import Invoice
from invoicing.services import credit_note_issue, invoice_void, payment_record, subscription_cancel
from tests.factories.catalog import PlanVersionFactory, PriceFactory
from tests.invoicing.helpers import start
from wallets.services import wallet_create, wallet_grant_create
from webhooks import services

pytestmark = pytest.mark.django_db
MAR1 = datetime(2026, 3, 1, tzinfo=UTC)


def _new_events(since: int) -> list[OutboxEvent]:
    return list(OutboxEvent.objects.filter(id__gt=since).order_by("id"))


def _last_id() -> int:
    return OutboxEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0


@pytest.fixture
def subscribed(settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_NETWORKS = True
    services.endpoint_create(url="http://127.0.0.1:9/h", events=["*"])
    version = PlanVersionFactory(published=True, number=1)
    PriceFactory(plan_version=version, name="Platform", amount=Decimal("30.00"))
    customer = customer_create(external_id="acme", name="Acme", currency="USD")
    subscription = start(customer, version.plan, MAR1)
    return customer, subscription


def test_start_records_customer_subscription_and_invoice_events_in_order(subscribed):
    customer, subscription = subscribed
    events = _new_events(0)
    assert [e.type for e in events] == [
        "customer.created",
        "subscription.started",
        "invoice.created",
        "invoice.finalized",
    ]
    assert events[1].data["id"] == str(subscription.pk) and events[1].data["plan_version"] == 1
    assert events[2].data["status"] == "draft" and events[3].data["number"] == "INV-000001"
    assert events[3].data["lines"][0]["amount"] == "30.00"
    assert len({e.uuid for e in events}) == 4 and all(e.deliveries.count() == 1 for e in events)


def test_payments_credit_notes_and_voids(subscribed):
    customer, _subscription = subscribed
    invoice = Invoice.objects.get()
    since = _last_id()
    # $30.00 due: a $5.00 credit note to the invoice leaves $25.00; paying $25.00 settles it -> invoice.paid.
    credit_note_issue(invoice=invoice, amount=Decimal("5.00"), reason="Goodwill", refund_to="invoice", now=MAR1)
    payment_record(invoice=invoice, amount=Decimal("10.00"), now=MAR1)  # partial: no event
    payment_record(invoice=invoice, amount=Decimal("15.00"), now=MAR1)
    events = _new_events(since)
    assert [e.type for e in events] == ["credit_note.created", "invoice.paid"]
    assert events[0].data["number"] == "CN-000001" and events[0].data["amount"] == "5.00"
    assert (events[1].data["status"], events[1].data["amount_paid"], events[1].data["amount_due"]) == (
        "paid",
        "25.00",
        "0.00",
    )

    # Another customer's unpaid invoice is voided -> invoice.voided.
    other = customer_create(external_id="void-me", name="Void", currency="USD")
    start(other, _subscription.plan, MAR1)
    since = _last_id()
    invoice_void(invoice=Invoice.objects.get(customer=other), now=MAR1)
    assert [(e.type, e.data["status"]) for e in _new_events(since)] == [("invoice.voided", "void")]


def test_cancel_at_period_end_changes_then_the_run_ends_it(subscribed):
    _customer, subscription = subscribed
    since = _last_id()
    subscription_cancel(subscription=subscription, at="period_end", now=MAR1 + timedelta(days=3))
    assert [(e.type, e.data["cancel_at_period_end"]) for e in _new_events(since)] == [("subscription.changed", True)]
    since = _last_id()
    call_command("run_billing", "--now", "2026-04-01T00:00:00Z", stdout=open("/dev/null", "w"))
    types = [e.type for e in _new_events(since)]
    # The period's end: the closing invoice (nothing in arrears here: $0.00, paid at once) and the end.
    assert "subscription.ended" in types
    ended = next(e for e in _new_events(since) if e.type == "subscription.ended")
    assert ended.data["status"] == "ended" and ended.data["ended_at"] == "2026-04-01T00:00:00Z"


def test_cancel_now_ends_it(subscribed):
    _customer, subscription = subscribed
    since = _last_id()
    subscription_cancel(subscription=subscription, at="now", now=MAR1 + timedelta(days=10))
    assert [e.type for e in _new_events(since)][0] == "subscription.ended"


def test_wallet_events_low_balance_top_up_and_expiry(subscribed):
    customer, _subscription = subscribed
    wallet = wallet_create(customer=customer, currency="USD", low_balance_threshold=Decimal("100"))
    since = _last_id()
    # A paid grant of 50 credits expiring Mar 10 -> wallet.topped_up (balance 50, below the threshold of 100).
    wallet_grant_create(
        wallet=wallet, credits=Decimal("50"), kind="paid", now=MAR1, expires_at=MAR1 + timedelta(days=9)
    )
    topped = _new_events(since)
    assert [e.type for e in topped] == ["wallet.topped_up"]
    assert topped[0].data["balance"] == "50" and topped[0].data["grant"]["credits"] == "50"

    # The run on Mar 5: spendable 50 < 100 -> one low-balance alert (once per crossing).
    since = _last_id()
    call_command("run_billing", "--now", "2026-03-05T00:00:00Z", stdout=open("/dev/null", "w"))
    call_command("run_billing", "--now", "2026-03-06T00:00:00Z", stdout=open("/dev/null", "w"))
    low = _new_events(since)
    assert [e.type for e in low] == ["wallet.low_balance"]
    assert (low[0].data["spendable_balance"], low[0].data["threshold"]) == ("50", "100")

    # The run on Mar 11: the 50 credits expired on Mar 10 -> credits.expired with the lot and the credits.
    since = _last_id()
    call_command("run_billing", "--now", "2026-03-11T00:00:00Z", stdout=open("/dev/null", "w"))
    expired = [e for e in _new_events(since) if e.type == "credits.expired"]
    assert len(expired) == 1
    assert (expired[0].data["credits"], expired[0].data["balance"], expired[0].data["grant"]["status"]) == (
        "50",
        "0",
        "expired",
    )


def test_plan_change_now_records_changed_and_started_and_a_preview_records_nothing(subscribed):
    """$30.00/month -> $60.00/month on Mar 16 (an upgrade: now). The replaced subscription sends
    ``subscription.changed`` (ended, pointing at its successor), the successor ``subscription.started``; a preview
    of the same change is rolled back with its events."""
    from invoicing.services.changes import subscription_change, subscription_change_cancel

    _customer, subscription = subscribed
    bigger = PlanVersionFactory(published=True, number=1, plan__currency="USD")
    PriceFactory(plan_version=bigger, name="Platform", amount=Decimal("60.00"))
    at = MAR1 + timedelta(days=15)
    since = _last_id()
    subscription_change(subscription=subscription, plan=bigger.plan, at="period_end", now=at)
    assert [(e.type, e.data["scheduled_change"]["plan"]) for e in _new_events(since)] == [
        ("subscription.changed", bigger.plan.key)
    ]
    since = _last_id()
    subscription_change_cancel(subscription=subscription, now=at)
    assert [(e.type, e.data["scheduled_change"]) for e in _new_events(since)] == [("subscription.changed", None)]

    since = _last_id()
    subscription_change(subscription=subscription, plan=bigger.plan, at="now", preview=True, now=at)
    assert _new_events(since) == []
    subscription_change(subscription=subscription, plan=bigger.plan, at="now", now=at)
    events = _new_events(since)
    changed = next(e for e in events if e.type == "subscription.changed")
    started = next(e for e in events if e.type == "subscription.started")
    assert changed.data["status"] == "ended" and changed.data["next_subscription"] == started.data["id"]
    assert started.data["previous_subscription"] == str(subscription.pk)
