"""The one display rule for numbers a person reads (core.money; docs/billing-rules.md "Numbers on screen").

Stored columns keep 12 places for credits, quantities and unit prices and 4 for invoice amounts, so a value read back
from PostgreSQL is ``Decimal("2000.000000000000")`` and a stored zero ``Decimal("0E-12")``. Each test reads rows
back from the database before showing them, as the admin does.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group, User
from django.template import Context, Template
from hypothesis import given
from hypothesis import strategies as st

from backoffice.roles import SUPPORT, roles_sync
from core.errors import ValidationFailed
from core.forms import DecimalInput
from core.money import format_money, format_percent
from customers.models import TaxRate
from invoicing.models import Invoice, Payment
from invoicing.services import payment_record
from tests.factories.catalog import PlanCreditGrantFactory, PriceFactory, TierFactory
from tests.factories.customers import CustomerFactory, TaxRateFactory
from tests.factories.invoicing import plan_with_api_calls
from tests.invoicing.helpers import start
from tests.wallets.conftest import grant
from wallets.models import CreditGrant, LedgerEntry, LowBalanceAlert
from wallets.services import wallet_create

decimals = st.decimals(allow_nan=False, allow_infinity=False, min_value=-(10**15), max_value=10**15, places=12)


def test_money_shows_its_currency_and_minor_unit_and_keeps_extra_places():
    assert format_money(Decimal("121.8000"), "USD") == "$121.80"
    assert format_money(Decimal("26.0000"), "USD") == "$26.00"
    assert format_money(Decimal("0E-12"), "USD") == "$0.00"
    assert format_money(Decimal("99.000000000000"), "USD") == "$99.00"
    assert format_money(Decimal("0.000300000000"), "USD") == "$0.0003"  # a unit price keeps its places
    assert format_money(Decimal("0.000000200000"), "USD") == "$0.0000002"  # not 2E-7
    assert format_money(Decimal("-5.5"), "USD") == "-$5.50"
    assert format_money(Decimal("1234.5"), "JPY") == "¥1,234.5"
    assert format_money(Decimal("1.5"), "KWD") == "1.500 KWD"


def test_rates_are_percentages_without_stored_zeros_or_exponents():
    assert format_percent(Decimal("20.0000")) == "20%"
    assert format_percent(Decimal("2E+1")) == "20%"  # what Decimal.normalize() makes of 20
    assert format_percent(Decimal("7.5000")) == "7.5%"
    assert format_percent(None) == "—"


@given(decimals, st.sampled_from(["USD", "JPY", "KWD"]))
def test_money_text_is_exact_and_never_in_exponent_form(value, currency):
    text = format_money(value, currency)
    assert "E" not in text
    digits = text.replace("$", "").replace("¥", "").replace(",", "").replace(" KWD", "")
    assert Decimal(digits) == value  # never rounded: 12-place values keep their places


def test_template_filters_follow_the_rule():
    template = Template("{% load numbers_display %}{{ c|credits }} | {{ m|money:'USD' }} | {{ p|percent }}")
    text = template.render(
        Context({"c": Decimal("2000.000000000000"), "m": Decimal("121.8000"), "p": Decimal("20.0000")})
    )
    assert text == "2,000 | $121.80 | 20%"


def test_an_editable_decimal_field_shows_what_it_holds_without_stored_zeros():
    widget = DecimalInput()
    assert widget.format_value(Decimal("99.000000000000")) == "99"
    assert widget.format_value(Decimal("0E-12")) == "0"
    assert widget.format_value(Decimal("0.050000000000")) == "0.05"
    assert widget.format_value(Decimal("20.0000")) == "20"
    assert widget.format_value("0.050") == "0.050"  # what a person typed is shown back as typed


@pytest.mark.django_db
def test_the_text_of_each_object_follows_the_rule():
    price = PriceFactory(name="API calls", model="tiered", amount=None, tier_mode="graduated")
    tiers = [
        TierFactory(price=price, up_to=Decimal(5000), unit_amount=Decimal(0)),
        TierFactory(price=price, up_to=None, unit_amount=Decimal("0.01"), flat_amount=Decimal(50)),
    ]
    plan_grant = PlanCreditGrantFactory(credits=Decimal(2000))
    rate = TaxRateFactory(percentage=Decimal("20"))
    customer = CustomerFactory(external_id="acme")
    wallet = wallet_create(customer=customer, name="Credits", currency="USD", conversion_rate=Decimal("0.05"))
    lot = grant(wallet, 2000, kind="plan")
    LowBalanceAlert.objects.create(wallet=wallet, balance=Decimal(50), threshold=Decimal(100))

    assert [str(t) for t in type(tiers[0]).objects.filter(price=price).order_by("position")] == [
        "up to 5,000: $0.00/unit",
        "and up: $0.01/unit + $50.00",
    ]
    assert str(type(plan_grant).objects.get(pk=plan_grant.pk)) == "Monthly credits: 2,000 credits"
    assert str(TaxRate.objects.get(pk=rate.pk)) == "VAT 20% (20%)"  # was "VAT 20% (2E+1%)"
    assert str(CreditGrant.objects.get(pk=lot.pk)) == "Plan (recurring) grant of 2,000 (2,000 left)"
    assert str(LedgerEntry.objects.get(grant=lot)) == "grant 2,000 (balance 2,000)"
    assert str(LowBalanceAlert.objects.get()) == "Low balance on Credits (acme, USD): 50 < 100"


@pytest.mark.django_db
def test_a_payment_and_the_refusal_of_too_much_say_the_amount_in_money():
    # API Pro as the factory makes it: $99 a month in advance; the start invoice asks for $99.00 (no tax).
    version, _ = plan_with_api_calls(effective_from=datetime(2026, 1, 1, tzinfo=UTC))
    subscription = start(CustomerFactory(external_id="acme"), version.plan, datetime(2026, 1, 1, tzinfo=UTC))
    invoice = Invoice.objects.get(subscription=subscription)
    assert invoice.amount_due == Decimal("99.00")
    with pytest.raises(ValidationFailed) as refused:
        payment_record(invoice=invoice, amount=Decimal("100"), now=datetime(2026, 1, 2, tzinfo=UTC))
    assert refused.value.message == "More than the amount due ($99.00)."  # was "(99.0000 USD)"
    payment_record(invoice=invoice, amount=Decimal("21.8"), now=datetime(2026, 1, 2, tzinfo=UTC))
    assert str(Payment.objects.get()) == f"$21.80 on {invoice.number}"  # was "21.8000 USD on ..."


@pytest.mark.django_db
def test_a_refused_admin_page_is_the_admins_own_styled_page(client):
    roles_sync()
    user = User.objects.create_user("sam", password="pw-support-123", is_staff=True)
    user.groups.add(Group.objects.get(name=SUPPORT))
    client.force_login(user)
    version, _ = plan_with_api_calls(effective_from=datetime(2026, 1, 1, tzinfo=UTC))
    start(CustomerFactory(external_id="acme"), version.plan, datetime(2026, 1, 1, tzinfo=UTC))
    invoice = Invoice.objects.get()
    for path in (
        "/admin/catalog/plan/",
        f"/admin/invoicing/invoice/{invoice.pk}/pdf/",
        f"/admin/invoicing/invoice/upcoming/{invoice.customer_id}/",
    ):
        response = client.get(path)
        page = response.content.decode()
        assert response.status_code == 403, path
        # The admin's frame (stylesheet, header, menu of what Support may open) with the refusal and the role.
        assert "admin/css/base.css" in page and 'id="header"' in page and "Customers" in page, path
        assert "Permission denied" in page and "not part of your role (Support)" in page, path
    # Outside the admin, Django's own page.
    assert client.get("/admin-not/").status_code == 404
