"""API.md: POST/GET /customers, GET/PATCH /customers/{external_id}, POST/GET /tax_rates."""

from __future__ import annotations

import pytest

from customers.models import Customer
from tests.factories.customers import CustomerFactory, TaxRateFactory, subscribe

pytestmark = pytest.mark.django_db


def test_create_customer_with_defaults(api):
    response = api.post("/api/v1/customers", {"external_id": "acme", "name": "Acme", "currency": "EUR"})
    assert response.status_code == 201, response.json()
    assert response.json() == {
        "external_id": "acme",
        "name": "Acme",
        "email": "",
        "currency": "EUR",
        "tax_rates": [],
        "net_payment_terms": 0,
        "invoice_grace_days": 0,
        "timezone": "UTC",
        # the optional billing address (added fields), empty when not given
        "address_line1": "",
        "address_line2": "",
        "address_city": "",
        "address_postal_code": "",
        "address_country": "",
    }


def test_create_customer_full_shape_and_read_it_back(api):
    TaxRateFactory(code="vat-20")
    body = {
        "external_id": "acme",
        "name": "Acme",
        "email": "billing@acme.test",
        "currency": "USD",
        "tax_rates": ["vat-20"],
        "net_payment_terms": 30,
        "invoice_grace_days": 3,
        "timezone": "Europe/London",
        "address_line1": "1 Main Street",
        "address_line2": "Floor 2",
        "address_city": "London",
        "address_postal_code": "EC1A 1AA",
        "address_country": "GB",
    }
    assert api.post("/api/v1/customers", body).status_code == 201
    assert api.get("/api/v1/customers/acme").json() == body
    listing = api.get("/api/v1/customers").json()
    assert listing["count"] == 1 and listing["next"] is None and listing["previous"] is None
    assert listing["results"] == [body]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "No id", "currency": "USD"}, "external_id"),
        ({"external_id": "x", "currency": "USD"}, "name"),
        ({"external_id": "x", "name": "X"}, "currency"),
        ({"external_id": "x", "name": "X", "currency": "XYZ"}, "currency"),
        ({"external_id": "x", "name": "X", "currency": "KWD"}, "currency"),  # a known code, not configured
        ({"external_id": "x", "name": "X", "currency": "USD", "tax_rates": ["nope"]}, "tax_rates"),
        ({"external_id": "x", "name": "X", "currency": "USD", "email": "not-an-email"}, "email"),
        ({"external_id": "x", "name": "X", "currency": "USD", "net_payment_terms": -1}, "net_payment_terms"),
        ({"external_id": "x", "name": "X", "currency": "USD", "invoice_grace_days": "soon"}, "invoice_grace_days"),
        # 0-365 (API.md "Input bounds"): 999999999 days made every later invoice's due date overflow (500).
        ({"external_id": "x", "name": "X", "currency": "USD", "net_payment_terms": 999999999}, "net_payment_terms"),
        ({"external_id": "x", "name": "X", "currency": "USD", "net_payment_terms": 366}, "net_payment_terms"),
        ({"external_id": "x", "name": "X", "currency": "USD", "invoice_grace_days": 999999999}, "invoice_grace_days"),
        ({"external_id": "x", "name": "X", "currency": "USD", "invoice_grace_days": 366}, "invoice_grace_days"),
    ],
)
def test_bad_customer_input_is_a_400_naming_the_field(api, body, field):
    response = api.post("/api/v1/customers", body)
    assert response.status_code == 400
    assert field in response.json()
    assert not Customer.objects.exists()


def test_duplicate_external_id_is_a_400(api):
    CustomerFactory(external_id="acme")
    response = api.post("/api/v1/customers", {"external_id": "acme", "name": "Again", "currency": "USD"})
    assert response.status_code == 400
    assert "external_id" in response.json()


def test_unknown_customer_is_a_404(api):
    assert api.get("/api/v1/customers/ghost").status_code == 404
    assert api.patch("/api/v1/customers/ghost", {"name": "x"}).status_code == 404


def test_patch_changes_only_the_fields_sent(api):
    TaxRateFactory(code="vat-20")
    TaxRateFactory(code="gst-5", name="GST", percentage="5")
    CustomerFactory(external_id="acme", name="Acme", email="a@acme.test", net_payment_terms=15)
    response = api.patch("/api/v1/customers/acme", {"tax_rates": ["vat-20", "gst-5"], "invoice_grace_days": 2})
    assert response.status_code == 200, response.json()
    assert response.json() == {
        "external_id": "acme",
        "name": "Acme",
        "email": "a@acme.test",
        "currency": "USD",
        "tax_rates": ["gst-5", "vat-20"],
        "net_payment_terms": 15,
        "invoice_grace_days": 2,
        "timezone": "UTC",
        "address_line1": "",
        "address_line2": "",
        "address_city": "",
        "address_postal_code": "",
        "address_country": "",
    }
    response = api.patch("/api/v1/customers/acme", {"tax_rates": []})
    assert response.json()["tax_rates"] == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"tax_rates": ["nope"]}, "tax_rates"),
        ({"currency": "XYZ"}, "currency"),
        ({"external_id": "renamed"}, "external_id"),
        ({"email": "bad"}, "email"),
        ({"net_payment_terms": 999999999}, "net_payment_terms"),
        ({"invoice_grace_days": 366}, "invoice_grace_days"),
        ({"invoice_grace_days": -1}, "invoice_grace_days"),
    ],
)
def test_bad_patch_is_a_400_naming_the_field(api, body, field):
    CustomerFactory(external_id="acme")
    response = api.patch("/api/v1/customers/acme", body)
    assert response.status_code == 400
    assert field in response.json()


def test_a_year_of_terms_and_grace_is_accepted_and_bills(api):
    from datetime import UTC, datetime
    from decimal import Decimal

    from invoicing.models import Invoice
    from invoicing.services import subscription_start
    from tests.factories.catalog import PlanVersionFactory, PriceFactory

    body = {
        "external_id": "slow",
        "name": "Slow",
        "currency": "USD",
        "net_payment_terms": 365,
        "invoice_grace_days": 365,
    }
    assert api.post("/api/v1/customers", body).status_code == 201
    version = PlanVersionFactory(published=True, number=1)
    PriceFactory(plan_version=version, amount=Decimal("10"))
    start = datetime(2026, 1, 1, tzinfo=UTC)
    subscription_start(
        customer=Customer.objects.get(external_id="slow"),
        plan=version.plan,
        start_at=start,
        billing="calendar",
        pinned_version=None,
        now=start,
    )
    invoice = Invoice.objects.get()
    # A draft for 365 days: finalized by the first run at or after 2027-01-01 (2026 has 365 days).
    assert invoice.status == Invoice.Status.DRAFT and invoice.finalize_after == datetime(2027, 1, 1, tzinfo=UTC)


def test_the_service_refuses_day_counts_outside_0_to_365_naming_the_field():
    from core.errors import ValidationFailed
    from customers.services import customer_create, customer_update

    for field, value in (("net_payment_terms", 366), ("invoice_grace_days", 999999999), ("net_payment_terms", True)):
        with pytest.raises(ValidationFailed) as caught:
            customer_create(external_id="x", name="X", currency="USD", **{field: value})
        assert caught.value.field == field
    customer = CustomerFactory()
    with pytest.raises(ValidationFailed) as caught:
        customer_update(customer=customer, data={"invoice_grace_days": 400})
    assert caught.value.field == "invoice_grace_days"
    assert not Customer.objects.filter(external_id="x").exists()


def test_currency_cannot_change_under_an_active_subscription(api):
    subscription = subscribe()
    external_id = subscription.customer.external_id
    response = api.patch(f"/api/v1/customers/{external_id}", {"currency": "EUR"})
    assert response.status_code == 409
    assert "currency" in response.json()
    # without subscriptions it may change
    CustomerFactory(external_id="free")
    assert api.patch("/api/v1/customers/free", {"currency": "EUR"}).json()["currency"] == "EUR"


def test_tax_rates_create_and_list(api):
    response = api.post("/api/v1/tax_rates", {"code": "vat-20", "name": "VAT", "percentage": "20"})
    assert response.status_code == 201
    assert response.json() == {"code": "vat-20", "name": "VAT", "percentage": "20"}
    api.post("/api/v1/tax_rates", {"code": "gst-7-5", "name": "GST", "percentage": "7.5"})
    listing = api.get("/api/v1/tax_rates").json()
    assert listing["count"] == 2
    assert [r["percentage"] for r in listing["results"]] == ["7.5", "20"]  # ordered by code: gst-7-5, vat-20


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "VAT", "percentage": "20"}, "code"),
        ({"code": "bad code!", "name": "VAT", "percentage": "20"}, "code"),
        ({"code": "vat", "percentage": "20"}, "name"),
        ({"code": "vat", "name": "VAT", "percentage": "120"}, "percentage"),
        ({"code": "vat", "name": "VAT", "percentage": "-1"}, "percentage"),
        ({"code": "vat", "name": "VAT", "percentage": "lots"}, "percentage"),
    ],
)
def test_bad_tax_rate_is_a_400_naming_the_field(api, body, field):
    response = api.post("/api/v1/tax_rates", body)
    assert response.status_code == 400
    assert field in response.json()


def test_duplicate_tax_rate_code_is_a_400(api):
    TaxRateFactory(code="vat-20")
    response = api.post("/api/v1/tax_rates", {"code": "vat-20", "name": "VAT", "percentage": "20"})
    assert response.status_code == 400
    # Regression: the answer was {"code": "invalid"}: the error code overwrote the field named "code".
    assert response.json() == {"code": ["A tax rate with code 'vat-20' already exists."], "error_code": "invalid"}


def test_read_key_cannot_write(anon_api, db):
    from core.auth import api_key_create

    _, raw = api_key_create(name="reader", scopes=["read"])
    anon_api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert anon_api.get("/api/v1/customers").status_code == 200
    assert anon_api.post("/api/v1/customers", {}, format="json").status_code == 403


def test_customer_address_is_optional_patchable_and_its_country_checked(api):
    assert (
        api.post(
            "/api/v1/customers", {"external_id": "acme", "name": "Acme", "currency": "USD", "address_country": "gb"}
        ).json()["address_country"]
        == "GB"
    )
    patched = api.patch("/api/v1/customers/acme", {"address_line1": "2 High St", "address_city": "Leeds"})
    assert patched.status_code == 200
    assert (patched.json()["address_line1"], patched.json()["address_city"], patched.json()["address_country"]) == (
        "2 High St",
        "Leeds",
        "GB",
    )
    bad = api.patch("/api/v1/customers/acme", {"address_country": "Britain"})
    assert bad.status_code == 400 and "address_country" in bad.json()
    assert api.post(
        "/api/v1/customers", {"external_id": "b", "name": "B", "currency": "USD", "address_country": "G1"}
    ).json().keys() >= {"address_country"}
