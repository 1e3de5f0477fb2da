"""Finance roles enforced on screens and on admin actions: Finance admin, Finance viewer, Support."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group, User

from backoffice.roles import FINANCE_ADMIN, FINANCE_VIEWER, SUPPORT, roles_sync
from invoicing.models import Invoice
from tests.factories.catalog import PlanFactory
from tests.factories.customers import CustomerFactory
from wallets.models import CreditGrant
from wallets.services import wallet_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def login(client):
    roles_sync()

    def _login(role: str):
        user = User.objects.create_user(role.lower().replace(" ", "-"), password="pw-role-123", is_staff=True)
        user.groups.add(Group.objects.get(name=role))
        client.force_login(user)
        return client

    return _login


def _wallet():
    customer = CustomerFactory(external_id="acme")
    return wallet_create(customer=customer, name="Credits", currency="USD", conversion_rate=Decimal("1"))


def _grant(client, wallet, credits: str):
    return client.post(
        "/admin/wallets/wallet/",
        {
            "action": "grant_credits",
            "_selected_action": [wallet.pk],
            "confirm": "yes",
            "credits": credits,
            "kind": "promotional",
            "priority": "10",
            "expires_at": "",
            "name": "",
        },
    )


def test_support_grants_credits_up_to_the_limit_only(login, settings):
    settings.SUPPORT_GRANT_LIMIT = Decimal("500")
    wallet = _wallet()
    client = login(SUPPORT)
    # 500 credits: at the limit, granted
    assert _grant(client, wallet, "500").status_code in (200, 302)
    # 501 credits: over the limit, the form refuses and nothing is granted
    page = _grant(client, wallet, "501")
    assert page.status_code == 200 and "at most 500" in page.content.decode()
    assert list(CreditGrant.objects.values_list("credits", flat=True)) == [Decimal("500")]
    wallet.refresh_from_db()
    assert wallet.balance == Decimal("500")


def test_support_cannot_void_or_touch_catalog_and_invoices(login):
    wallet = _wallet()
    client = login(SUPPORT)
    assert client.get("/admin/customers/customer/").status_code == 200
    assert client.get("/admin/wallets/wallet/").status_code == 200
    assert client.get("/admin/catalog/plan/").status_code == 403
    assert client.get("/admin/invoicing/invoice/").status_code == 403
    # the void action is not offered, and posting it does nothing
    page = client.get("/admin/wallets/wallet/").content.decode()
    assert "grant_credits" in page and "void_remaining_credits" not in page
    client.post(
        "/admin/wallets/wallet/",
        {"action": "void_remaining_credits", "_selected_action": [wallet.pk], "confirm": "yes"},
    )
    assert not wallet.ledger.filter(type="void").exists()


def test_finance_viewer_reads_everything_and_changes_nothing(login):
    wallet = _wallet()
    plan = PlanFactory()
    invoice = Invoice.objects.create(
        customer=wallet.customer,
        currency="USD",
        billing_boundary_at=datetime(2026, 1, 1, tzinfo=UTC),
        reason=Invoice.Reason.ONE_OFF,
    )
    client = login(FINANCE_VIEWER)
    for url in (
        "/admin/",
        "/admin/catalog/plan/",
        "/admin/invoicing/invoice/",
        "/admin/wallets/wallet/",
        f"/admin/invoicing/invoice/{invoice.pk}/change/",
        f"/admin/catalog/plan/{plan.pk}/change/",
    ):
        assert client.get(url).status_code == 200, url
    # no action is offered to a viewer on invoices or wallets; a forged action POST changes nothing
    page = client.get("/admin/invoicing/invoice/").content.decode()
    assert "finalize_action" not in page and 'name="action"' not in page
    client.post("/admin/invoicing/invoice/", {"action": "finalize_action", "_selected_action": [invoice.pk]})
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.DRAFT and invoice.number is None
    assert _grant(client, wallet, "10").status_code in (200, 302)
    assert not CreditGrant.objects.exists()
    # change forms refuse a POST
    response = client.post(f"/admin/catalog/plan/{plan.pk}/change/", {"name": "Renamed"})
    assert response.status_code == 403
    plan.refresh_from_db()
    assert plan.name != "Renamed"


def test_finance_admin_may_grant_any_amount_and_void(login, settings):
    settings.SUPPORT_GRANT_LIMIT = Decimal("500")
    wallet = _wallet()
    client = login(FINANCE_ADMIN)
    _grant(client, wallet, "5000")
    wallet.refresh_from_db()
    assert wallet.balance == Decimal("5000")
    client.post(
        "/admin/wallets/wallet/",
        {"action": "void_remaining_credits", "_selected_action": [wallet.pk], "confirm": "yes"},
    )
    wallet.refresh_from_db()
    assert wallet.balance == Decimal("0")


# ---------------------------------------------------------------- Support and the grant limit (forged POSTs)


def _wallet_form(wallet, **changes):
    """Every field of the wallet's change form as a browser would post it, with ``changes`` forged in."""
    data = {
        "name": wallet.name,
        "conversion_rate": str(wallet.conversion_rate),
        "applies_to": wallet.applies_to,
        "low_balance_threshold": "",
        "auto_top_up_credits": "",
        "status": wallet.status,
        "grants-TOTAL_FORMS": "0",
        "grants-INITIAL_FORMS": "0",
        "grants-MIN_NUM_FORMS": "0",
        "grants-MAX_NUM_FORMS": "0",
        "ledger-TOTAL_FORMS": "0",
        "ledger-INITIAL_FORMS": "0",
        "ledger-MIN_NUM_FORMS": "0",
        "ledger-MAX_NUM_FORMS": "0",
    }
    data.update(changes)
    return data


def test_support_cannot_change_a_wallets_terms_even_with_forged_form_data(login):
    """Regression: Support set conversion_rate=1000000 (a $100 invoice paid with 0.0001 credits) and a tiny rate with
    auto_top_up_credits=999999999999999 (1e15 credits at the next run) through the wallet's change form."""
    wallet = _wallet()
    client = login(SUPPORT)
    page = client.get(f"/admin/wallets/wallet/{wallet.pk}/change/").content.decode()
    assert 'name="conversion_rate"' not in page and 'name="auto_top_up_credits"' not in page
    assert 'name="name"' in page  # Support may still rename it
    response = client.post(
        f"/admin/wallets/wallet/{wallet.pk}/change/",
        _wallet_form(
            wallet,
            name="Support credits",
            conversion_rate="1000000",
            applies_to="usage",
            low_balance_threshold="999999999999999",
            auto_top_up_credits="999999999999999",
            status="closed",
        ),
    )
    assert response.status_code == 302
    wallet.refresh_from_db()
    assert wallet.name == "Support credits"
    assert (
        wallet.conversion_rate,
        wallet.applies_to,
        wallet.low_balance_threshold,
        wallet.auto_top_up_credits,
        wallet.status,
    ) == (Decimal("1"), "all", None, None, "active")


def test_finance_admin_may_change_a_wallets_terms(login):
    wallet = _wallet()
    client = login(FINANCE_ADMIN)
    response = client.post(
        f"/admin/wallets/wallet/{wallet.pk}/change/",
        _wallet_form(wallet, conversion_rate="0.05", low_balance_threshold="100", auto_top_up_credits="1000"),
    )
    assert response.status_code == 302
    wallet.refresh_from_db()
    assert (wallet.conversion_rate, wallet.low_balance_threshold, wallet.auto_top_up_credits) == (
        Decimal("0.05"),
        Decimal("100"),
        Decimal("1000"),
    )


def test_support_grant_limit_bounds_the_whole_action_not_each_wallet(login, settings):
    """Regression: selecting two wallets granted 2 x the limit in one action."""
    settings.SUPPORT_GRANT_LIMIT = Decimal("1000")
    first = _wallet()
    second = wallet_create(
        customer=CustomerFactory(external_id="globex"), name="Credits", currency="USD", conversion_rate=Decimal("1")
    )
    client = login(SUPPORT)
    post = {
        "action": "grant_credits",
        "_selected_action": [first.pk, second.pk],
        "confirm": "yes",
        "kind": "promotional",
        "priority": "10",
        "expires_at": "",
        "name": "",
    }
    # 2 wallets x 600 = 1,200 > 1,000: refused, nothing granted
    page = client.post("/admin/wallets/wallet/", {**post, "credits": "600"})
    assert page.status_code == 200
    assert "at most 1,000 credits in one action (2 wallets x 600 = 1,200)" in page.content.decode()
    assert not CreditGrant.objects.exists()
    # 2 wallets x 500 = 1,000: at the limit, granted to both
    assert client.post("/admin/wallets/wallet/", {**post, "credits": "500"}).status_code == 302
    assert sorted(CreditGrant.objects.values_list("wallet_id", "credits")) == [
        (first.pk, Decimal("500")),
        (second.pk, Decimal("500")),
    ]


def test_a_finance_admin_grants_past_the_support_limit_to_many_wallets(login, settings):
    settings.SUPPORT_GRANT_LIMIT = Decimal("1000")
    first = _wallet()
    second = wallet_create(
        customer=CustomerFactory(external_id="globex"), name="Credits", currency="USD", conversion_rate=Decimal("1")
    )
    client = login(FINANCE_ADMIN)
    client.post(
        "/admin/wallets/wallet/",
        {
            "action": "grant_credits",
            "_selected_action": [first.pk, second.pk],
            "confirm": "yes",
            "credits": "5000",
            "kind": "promotional",
            "priority": "10",
            "expires_at": "",
            "name": "",
        },
    )
    assert CreditGrant.objects.count() == 2


# ---------------------------------------------------------------- every admin action, as a Finance viewer

ACTION_FORM = {
    "confirm": "yes",
    "post": "yes",
    "credits": "10",
    "kind": "promotional",
    "priority": "10",
    "expires_at": "",
    "name": "",
    "amount": "1.00",
    "reference": "",
    "reason": "walk",
    "refund_to": "invoice",
    "at": "now",
}


def _one_of_everything():
    """At least one row for every admin list, in the states the actions act on (drafts, finalized, active...)."""
    import io

    from django.core.management import call_command
    from django.utils import timezone

    from core.auth import api_key_create
    from core.models import ApiAuditEntry
    from invoicing.models import BillingRun
    from invoicing.services import invoice_finalize, subscription_start
    from tests.factories.catalog import PlanVersionFactory, PriceFactory
    from tests.factories.invoicing import InvoiceFactory, InvoiceLineFactory, plan_with_api_calls
    from tests.factories.metering import EventFactory
    from wallets.models import LowBalanceAlert
    from wallets.services import wallet_grant_create

    version, _meter = plan_with_api_calls()
    PriceFactory(plan_version=PlanVersionFactory(plan=version.plan, number=2))  # a draft next to the published v1
    customer = CustomerFactory(external_id="acme")
    now = timezone.now()
    subscription_start(
        customer=customer, plan=version.plan, start_at=now, billing="calendar", pinned_version=None, now=now
    )
    finalized = InvoiceLineFactory(invoice=InvoiceFactory(customer=customer), amount=Decimal("30.00")).invoice
    finalized.subtotal = finalized.total = finalized.amount_due = Decimal("30.00")
    finalized.save()
    invoice_finalize(invoice=finalized, now=now)
    InvoiceLineFactory(invoice=InvoiceFactory(customer=customer))  # a draft
    wallet = wallet_create(customer=customer, name="Credits", currency="USD", conversion_rate=Decimal("1"))
    grant, _ = wallet_grant_create(wallet=wallet, credits=Decimal("100"), kind="promotional", now=now)
    LowBalanceAlert.objects.create(wallet=wallet, balance=Decimal("1"), threshold=Decimal("5"))
    EventFactory(customer_external_id="acme")
    key, _raw = api_key_create(name="walk")
    ApiAuditEntry.objects.create(api_key=key, method="POST", path="/api/v1/customers", status_code=201)
    BillingRun.objects.create(as_of=now)
    call_command("setup_periodic_tasks", stdout=io.StringIO())


def _snapshot() -> dict[str, list[dict]]:
    """Every row of every table (sessions aside: logging in writes one), to compare before and after."""
    from django.apps import apps

    return {
        model._meta.label: list(model._base_manager.order_by("pk").values())
        for model in apps.get_models()
        if model._meta.label != "sessions.Session"
    }


def test_every_admin_action_refuses_a_finance_viewer(login, rf):
    """Regression: a Finance viewer created a draft version with "New draft from versions" (permissions=["view"]),
    and django-celery-beat's actions (run, enable, disable, toggle) declared no permission at all. Walks every
    action of every registered ModelAdmin with a real POST (confirmation included) and checks nothing changed."""
    from django.contrib import admin
    from django.urls import reverse

    _one_of_everything()
    client = login(FINANCE_VIEWER)
    viewer = User.objects.get(username="finance-viewer")
    request = rf.get("/admin/")
    request.user = viewer
    before = _snapshot()
    walked = []
    for model, model_admin in admin.site._registry.items():
        assert model_admin.get_actions(request) == {}, f"{model._meta.label} offers actions to a viewer"
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        selected = [str(pk) for pk in model._base_manager.values_list("pk", flat=True)[:50]] or ["1"]
        for _func, name, _description in model_admin._get_base_actions():
            response = client.post(url, {"action": name, "_selected_action": selected, **ACTION_FORM})
            assert response.status_code in (200, 302, 403), (model._meta.label, name, response.status_code)
            assert _snapshot() == before, f"{model._meta.label}.{name} changed data for a Finance viewer"
            walked.append(f"{model._meta.label}.{name}")
    assert {
        "catalog.PlanVersion.new_draft_from_versions",
        "django_celery_beat.PeriodicTask.run_tasks",
        "django_celery_beat.PeriodicTask.toggle_tasks",
        "invoicing.Invoice.finalize_action",
        "wallets.Wallet.grant_credits",
    } <= set(walked)
    assert len(walked) >= 30


def test_the_walks_post_runs_the_action_for_a_finance_admin(login):
    """The same POST as the walk above does act for a role that may: the walk's refusals are real refusals."""
    from catalog.models import PlanVersion

    _one_of_everything()
    client = login(FINANCE_ADMIN)
    published = PlanVersion.objects.get(status="published")
    client.post(
        "/admin/catalog/planversion/",
        {"action": "new_draft_from_versions", "_selected_action": [published.pk], **ACTION_FORM},
    )
    assert PlanVersion.objects.filter(plan=published.plan).count() == 3  # v1, the v2 draft and the new v3
