"""Wallet admin: pages render; grant and void actions go through a confirmation page and book ledger rows."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.admin.models import LogEntry
from django.db import transaction

from tests.factories.wallets import WalletFactory
from tests.wallets.conftest import assert_ledger_whole, grant

pytestmark = pytest.mark.django_db


def test_pages_render(admin_client):
    wallet = WalletFactory()
    with transaction.atomic():
        grant(wallet, 10)
    for url in [
        "/admin/wallets/wallet/",
        f"/admin/wallets/wallet/{wallet.pk}/change/",
        "/admin/wallets/ledgerentry/",
        "/admin/wallets/creditgrant/",
        "/admin/wallets/lowbalancealert/",
        "/admin/wallets/wallet/add/",
    ]:
        assert admin_client.get(url).status_code == 200, url
    page = admin_client.get(f"/admin/wallets/wallet/{wallet.pk}/change/").content.decode()
    assert "Real-time balance" in page


def test_grant_then_void_with_confirmation(admin_client):
    wallet = WalletFactory()
    changelist = "/admin/wallets/wallet/"
    confirm = admin_client.post(changelist, {"action": "grant_credits", "_selected_action": [wallet.pk]})
    assert confirm.status_code == 200 and b"Yes, grant these credits" in confirm.content
    wallet.refresh_from_db()
    assert wallet.balance == 0  # nothing until confirmed
    admin_client.post(
        changelist,
        {
            "action": "grant_credits",
            "_selected_action": [wallet.pk],
            "confirm": "yes",
            "credits": "250",
            "kind": "promotional",
            "priority": "5",
            "expires_at": "",
            "name": "Goodwill",
        },
    )
    wallet.refresh_from_db()
    assert wallet.balance == Decimal(250)
    confirm = admin_client.post(changelist, {"action": "void_remaining_credits", "_selected_action": [wallet.pk]})
    assert b"Yes, void the remaining credits" in confirm.content
    admin_client.post(
        changelist, {"action": "void_remaining_credits", "_selected_action": [wallet.pk], "confirm": "yes"}
    )
    wallet.refresh_from_db()
    assert wallet.balance == 0
    assert LogEntry.objects.count() == 2
    assert list(wallet.ledger.values_list("type", flat=True).order_by("id")) == ["grant", "void"]
    assert_ledger_whole(wallet)


def test_grant_form_refuses_an_expiry_out_of_range(admin_client):
    wallet = WalletFactory()
    response = admin_client.post(
        "/admin/wallets/wallet/",
        {
            "action": "grant_credits",
            "_selected_action": [wallet.pk],
            "confirm": "yes",
            "credits": "250",
            "kind": "promotional",
            "priority": "5",
            "expires_at": "9999-12-31 00:00",
            "name": "",
        },
    )
    assert response.status_code == 200
    assert b"Must be between 2000-01-01T00:00:00Z and 2100-01-01T00:00:00Z." in response.content
    wallet.refresh_from_db()
    assert wallet.balance == 0 and not wallet.ledger.exists()


def test_change_page_queries_do_not_grow_with_ledger_rows(admin_client):
    """The ledger inline shows each row's grant: read along with the rows, not one query per row."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    wallet = WalletFactory()
    url = f"/admin/wallets/wallet/{wallet.pk}/change/"

    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert admin_client.get(url).status_code == 200
        return len(ctx.captured_queries)

    with transaction.atomic():
        grant(wallet, 10)
    few = queries()
    with transaction.atomic():
        for _ in range(5):
            grant(wallet, 10)
    assert queries() == few


def test_wallet_admin_creates_through_the_service(admin_client):
    from tests.factories.customers import CustomerFactory
    from wallets.models import Wallet

    customer = CustomerFactory(external_id="acme")
    form = {
        "customer": str(customer.pk),
        "name": "Credits",
        "currency": "USD",
        "applies_to": "all",
        "low_balance_threshold": "",
        "auto_top_up_credits": "",
        "status": "active",
        "grants-TOTAL_FORMS": "0",
        "grants-INITIAL_FORMS": "0",
        "ledger-TOTAL_FORMS": "0",
        "ledger-INITIAL_FORMS": "0",
    }
    refused = admin_client.post("/admin/wallets/wallet/add/", {**form, "conversion_rate": "0"})
    assert refused.status_code == 200
    assert refused.context["adminform"].form.errors["conversion_rate"] == ["Must be greater than 0."]
    assert admin_client.post("/admin/wallets/wallet/add/", {**form, "conversion_rate": "0.05"}).status_code == 302
    wallet = Wallet.objects.get(customer=customer)
    assert (wallet.conversion_rate, wallet.balance, wallet.status) == (Decimal("0.05"), Decimal("0"), "active")


def test_wallet_update_writes_only_the_terms_never_a_stale_balance():
    """The admin's change used to save the whole row: a balance read before a concurrent grant was written back.
    wallet_update_locked locks the row and writes only the fields it changes."""
    from wallets.services import wallet_update_locked

    wallet = WalletFactory()
    stale = type(wallet).objects.get(pk=wallet.pk)  # read before the grant, balance 0
    with transaction.atomic():
        grant(wallet, 10)
    with transaction.atomic():
        saved = wallet_update_locked(
            wallet=stale, data={"name": "Promo credits", "low_balance_threshold": Decimal("5")}
        )
    wallet.refresh_from_db()
    assert (wallet.name, wallet.low_balance_threshold, wallet.balance) == ("Promo credits", Decimal("5"), Decimal("10"))
    assert saved.balance == Decimal("10")
    assert_ledger_whole(wallet)
