"""Races through the API, with real threads and real row locks (transaction=True, one connection each).

- Two finalizations of the same draft invoice at once: one wins (200), the other gets 409; one number is
  assigned and the sequence has no gap.
- The same wallet grant (same ``idempotency_key``) submitted twice at once: credits are granted once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from invoicing.models import Invoice
from tests.factories.catalog import PlanVersionFactory, PriceFactory
from tests.factories.customers import CustomerFactory
from tests.invoicing.helpers import start
from wallets.models import CreditGrant, LedgerEntry
from wallets.selectors import wallet_ledger_check
from wallets.services import wallet_create

from .conftest import race


def _numbers() -> list[int]:
    return sorted(int(n.split("-")[-1]) for n in Invoice.objects.exclude(number=None).values_list("number", flat=True))


@pytest.mark.django_db(transaction=True)
def test_two_finalizations_at_once_one_wins_the_other_409(keyed_client):
    version = PlanVersionFactory(published=True, number=1)
    PriceFactory(plan_version=version, amount=Decimal("25.00"))
    # One customer finalized at once (takes number 1); one with a grace period, whose start invoice stays a draft.
    start(CustomerFactory(), version.plan, datetime(2026, 1, 1, tzinfo=UTC))
    graced = start(CustomerFactory(invoice_grace_days=3), version.plan, datetime(2026, 1, 1, tzinfo=UTC))
    draft = Invoice.objects.get(subscription=graced)
    assert draft.status == Invoice.Status.DRAFT and _numbers() == [1]

    clients = [keyed_client(), keyed_client()]
    results = race(*(lambda c=c: c.post(f"/api/v1/invoices/{draft.pk}/finalize") for c in clients))

    assert sorted(r.status_code for r in results) == [200, 409], [getattr(r, "content", r) for r in results]
    winner = next(r for r in results if r.status_code == 200).json()
    draft.refresh_from_db()
    assert draft.status == Invoice.Status.FINALIZED and draft.number == winner["number"]
    assert _numbers() == [1, 2]  # one number taken by the race, none skipped


@pytest.mark.django_db(transaction=True)
def test_double_submit_of_one_grant_idempotency_key_grants_once(keyed_client):
    wallet = wallet_create(customer=CustomerFactory(), currency="USD")
    body = {"credits": "500", "kind": "promotional", "idempotency_key": "promo-2026-01"}
    clients = [keyed_client(), keyed_client()]
    results = race(*(lambda c=c: c.post(f"/api/v1/wallets/{wallet.pk}/grants", body) for c in clients))

    assert sorted(r.status_code for r in results) == [200, 201], [getattr(r, "content", r) for r in results]
    assert results[0].json()["id"] == results[1].json()["id"]
    assert CreditGrant.objects.filter(wallet=wallet).count() == 1
    assert LedgerEntry.objects.filter(wallet=wallet).count() == 1
    check = wallet_ledger_check(wallet=wallet)
    # One grant of 500: balance = ledger sum = remaining = 500.
    assert check.ok and check.balance == Decimal("500")
