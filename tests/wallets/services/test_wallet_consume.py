"""wallet_consume and grants: order of consumption, idempotency, no overspend (real threads)."""

from __future__ import annotations

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import close_old_connections, transaction

from core.errors import Conflict, ValidationFailed
from tests.factories.wallets import WalletFactory
from tests.wallets.conftest import T0, assert_ledger_whole, grant
from wallets.models import CreditGrant, LedgerEntry
from wallets.services import (
    wallet_consume,
    wallet_grant_create,
    wallet_grant_void_locked,
    wallet_grants_expire,
)

pytestmark = pytest.mark.django_db


def test_lots_20_priority_1_then_25_25_30_oldest_first():
    # 80 credits: the priority-1 lot of 20 first (80 - 20 = 60 left), then the priority-2 lots oldest first:
    # 25 (35 left), 25 (10 left), then 10 of the 30 -> remaining 0, 0, 0, 20.
    wallet = WalletFactory()
    with transaction.atomic():
        lots = [
            grant(wallet, 20, priority=1, effective_at=T0 - timedelta(days=1)),
            grant(wallet, 25, priority=2, effective_at=T0 - timedelta(days=1)),
            grant(wallet, 25, priority=2, effective_at=T0 - timedelta(days=1)),
            grant(wallet, 30, priority=2, effective_at=T0 - timedelta(days=1)),
        ]
    consumed = wallet_consume(wallet=wallet, credits=Decimal(80), reference="api", idempotency_key="c1", now=T0)
    assert consumed == Decimal(80)
    assert [CreditGrant.objects.get(pk=g.pk).remaining for g in lots] == [0, 0, 0, 20]
    assert [CreditGrant.objects.get(pk=g.pk).status for g in lots] == ["consumed"] * 3 + ["active"]
    wallet.refresh_from_db()
    assert wallet.balance == Decimal(20)  # 100 - 80
    # One consume row per lot touched, each with balance_after: 80, 55, 30, 20.
    rows = list(LedgerEntry.objects.filter(wallet=wallet, type="consume").order_by("id"))
    assert [r.credits for r in rows] == [-20, -25, -25, -10]
    assert [r.balance_after for r in rows] == [80, 55, 30, 20]
    assert_ledger_whole(wallet)


def test_consume_replay_books_nothing_twice_and_overspend_is_409():
    wallet = WalletFactory()
    with transaction.atomic():
        grant(wallet, 50)
    assert wallet_consume(wallet=wallet, credits=Decimal(30), reference="x", idempotency_key="k", now=T0) == 30
    assert wallet_consume(wallet=wallet, credits=Decimal(30), reference="x", idempotency_key="k", now=T0) == 30
    wallet.refresh_from_db()
    assert wallet.balance == 20  # 50 - 30, once
    with pytest.raises(Conflict):
        wallet_consume(wallet=wallet, credits=Decimal(21), reference="x", idempotency_key="k2", now=T0)
    assert_ledger_whole(wallet)


def test_not_yet_effective_and_expired_lots_are_not_spent():
    wallet = WalletFactory()
    with transaction.atomic():
        grant(wallet, 10, effective_at=T0 + timedelta(days=1))
        grant(wallet, 10, expires_at=T0 + timedelta(hours=1))
    with pytest.raises(Conflict):
        wallet_consume(wallet=wallet, credits=Decimal(11), reference="x", idempotency_key="a", now=T0)
    # Two hours later the second lot has expired: nothing left to spend until the first becomes effective.
    with pytest.raises(Conflict):
        wallet_consume(
            wallet=wallet, credits=Decimal(1), reference="x", idempotency_key="b", now=T0 + timedelta(hours=2)
        )
    assert (
        wallet_consume(
            wallet=wallet, credits=Decimal(10), reference="x", idempotency_key="c", now=T0 + timedelta(days=2)
        )
        == 10
    )
    assert_ledger_whole(wallet)


def test_grant_idempotency_key_and_validation():
    wallet = WalletFactory()
    g1, created1 = wallet_grant_create(wallet=wallet, credits=Decimal(5), kind="signup", now=T0, idempotency_key="s")
    g2, created2 = wallet_grant_create(wallet=wallet, credits=Decimal(5), kind="signup", now=T0, idempotency_key="s")
    assert (created1, created2) == (True, False) and g1.pk == g2.pk
    wallet.refresh_from_db()
    assert wallet.balance == 5
    with pytest.raises(ValidationFailed) as err:
        wallet_grant_create(wallet=wallet, credits=Decimal(5), kind="signup", now=T0, expires_at=T0)
    assert err.value.field == "expires_at"
    with pytest.raises(ValidationFailed) as err:
        wallet_grant_create(wallet=wallet, credits=Decimal(-1), kind="signup", now=T0)
    assert err.value.field == "credits"
    assert_ledger_whole(wallet)


def test_expiry_and_void_are_ledger_rows():
    wallet = WalletFactory()
    with transaction.atomic():
        g_exp = grant(wallet, 40, expires_at=T0 + timedelta(days=1))
        g_void = grant(wallet, 15)
        assert wallet_grants_expire(wallet=wallet, now=T0) == 0
        assert wallet_grants_expire(wallet=wallet, now=T0 + timedelta(days=1)) == 1
        assert wallet_grants_expire(wallet=wallet, now=T0 + timedelta(days=1)) == 0  # idempotent
        assert wallet_grant_void_locked(grant=g_void, now=T0) == 15
        assert wallet_grant_void_locked(grant=g_void, now=T0) == 0
    g_exp.refresh_from_db()
    g_void.refresh_from_db()
    assert (g_exp.remaining, g_exp.status, g_void.remaining, g_void.status) == (0, "expired", 0, "voided")
    assert list(LedgerEntry.objects.filter(wallet=wallet).values_list("type", "credits").order_by("id")) == [
        ("grant", 40),
        ("grant", 15),
        ("expire", -40),
        ("void", -15),
    ]
    wallet.refresh_from_db()
    assert wallet.balance == 0
    assert_ledger_whole(wallet)


@pytest.mark.django_db(transaction=True)
def test_two_threads_spending_at_once_never_overspend():
    # 100 credits; two threads each try to spend 60 at the same moment: exactly one succeeds (100 - 60 = 40),
    # the other sees 40 < 60 and gets a Conflict.
    wallet = WalletFactory()
    with transaction.atomic():
        grant(wallet, 100)
    barrier = threading.Barrier(2)
    results: list[object] = []

    def spend(key: str) -> None:
        try:
            barrier.wait()
            results.append(
                wallet_consume(wallet=wallet, credits=Decimal(60), reference="t", idempotency_key=key, now=T0)
            )
        except Conflict as exc:
            results.append(exc)
        finally:
            close_old_connections()

    threads = [threading.Thread(target=spend, args=(f"t{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(type(r).__name__ for r in results) == ["Conflict", "Decimal"]
    wallet.refresh_from_db()
    assert wallet.balance == Decimal(40)
    assert_ledger_whole(wallet)
