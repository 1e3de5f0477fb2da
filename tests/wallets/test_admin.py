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


def test_a_refused_grant_shows_only_its_error(admin_client):
    """Regression: a refused grant showed "Must be in the future." beside "Granted 10 credits to 0 wallet(s)"."""
    from wallets.models import Wallet

    wallet = WalletFactory()
    post = {
        "action": "grant_credits",
        "_selected_action": [wallet.pk],
        "confirm": "yes",
        "credits": "10",
        "kind": "promotional",
        "priority": "5",
        "name": "",
    }
    # An expiry in the past: the form says so beside the field; nothing is granted, nothing claims success.
    page = admin_client.post("/admin/wallets/wallet/", {**post, "expires_at": "2001-01-01 00:00"})
    assert page.status_code == 200 and b"Must be in the future" in page.content
    assert [str(m) for m in page.wsgi_request._messages] == []

    # The service refuses a closed wallet: its error alone; the open wallet selected with it is granted.
    closed = WalletFactory(status=Wallet.Status.CLOSED)
    response = admin_client.post("/admin/wallets/wallet/", {**post, "expires_at": "", "_selected_action": [closed.pk]})
    messages = [str(m) for m in response.wsgi_request._messages]
    assert len(messages) == 1 and "not granted: wallet: This wallet is closed." in messages[0]
    response = admin_client.post(
        "/admin/wallets/wallet/", {**post, "expires_at": "", "_selected_action": [wallet.pk, closed.pk]}
    )
    messages = [str(m) for m in response.wsgi_request._messages]
    assert messages[-1] == "Granted 10 credits to 1 wallet." and "This wallet is closed." in messages[0]
    wallet.refresh_from_db()
    assert wallet.balance == Decimal(10)


def test_ledger_references_name_the_invoice_and_link_to_it(admin_client, client):
    """Regression: ledger rows showed internal ids ("invoice:31") instead of the invoice's number."""
    from django.contrib.auth.models import Group, User

    from backoffice.roles import SUPPORT, roles_sync
    from invoicing.models import Invoice

    wallet = WalletFactory()
    issued = Invoice.objects.create(
        reason=Invoice.Reason.BOUNDARY,
        customer=wallet.customer,
        currency="USD",
        status="finalized",
        number="INV-000012",
    )
    draft = Invoice.objects.create(reason=Invoice.Reason.BOUNDARY, customer=wallet.customer, currency="USD")
    with transaction.atomic():
        grant(wallet, 10, reference=f"invoice:{issued.pk}")
        grant(wallet, 5, reference=f"invoice:{draft.pk}")
        grant(wallet, 1, reference="invoice:not-a-number")
    for url in ("/admin/wallets/ledgerentry/", f"/admin/wallets/wallet/{wallet.pk}/change/"):
        html = admin_client.get(url).content.decode()
        assert f'<a href="/admin/invoicing/invoice/{issued.pk}/change/">INV-000012</a>' in html, url
        assert f'<a href="/admin/invoicing/invoice/{draft.pk}/change/">Draft #{draft.pk}</a>' in html, url
        assert f"invoice:{issued.pk}<" not in html and "invoice:not-a-number" in html, url

    # Support may not open invoices: the number, as text.
    roles_sync()
    user = User.objects.create_user("support", password="pw-support-1", is_staff=True)
    user.groups.add(Group.objects.get(name=SUPPORT))
    client.force_login(user)
    for url in ("/admin/wallets/ledgerentry/", f"/admin/wallets/wallet/{wallet.pk}/change/"):
        html = client.get(url).content.decode()
        assert "INV-000012" in html and "/admin/invoicing/" not in html, url


def test_the_wallet_page_shows_credits_held_for_drafts(admin_client):
    """10 credits granted, 6 held for one draft invoice (as a draft with grace days holds them): the balance
    stays 10, the page says 6 held for 1 draft invoice, and the grant's row shows its 6 held."""
    from wallets.models import CreditGrant
    from wallets.services.holds import holds_place_locked

    wallet = WalletFactory()
    with transaction.atomic():
        grant(wallet, 10)
        grants = list(CreditGrant.objects.select_for_update().filter(wallet=wallet))
        assert holds_place_locked(wallet=wallet, grants=grants, credits=Decimal(6), invoice_id=4242) == Decimal(6)
    page = admin_client.get(f"/admin/wallets/wallet/{wallet.pk}/change/").content.decode()
    assert "Held for draft invoices" in page and "6 for 1 draft invoice (spent when finalized)" in page
    wallet.refresh_from_db()
    assert wallet.balance == Decimal(10)
